"""AvatarRuntime: an AvatarStream driven at wall-clock pace inside an asyncio agent.

Why: frameworks run on one event loop and must never block it, but rendering a frame takes
milliseconds of CPU. The AvatarStream lives on the runtime's own single worker thread; speech,
segment ends and clears are posted to an inbox that the worker applies, in order, before each
tick. Posting never waits for a render in progress: a TTS chunk that had to queue behind a slow
render would reach the buffer late and in a burst, and every such burst would add its delay to
the rest of the utterance (a jitter buffer cannot shrink while speech plays). ``frames()`` ticks
on a monotonic clock (injected for tests) every 1/25 s; when the CPU falls behind it catches up
without sleeping instead of dropping frames (audio must stay continuous).

Owner rules: whoever creates the runtime iterates ``frames()`` from one task and calls ``aclose``;
``aclose`` stops the iteration and the worker thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from facestream.avatar import DEFAULT_CUSHION_MS, AvatarFrame, AvatarStream
from models.engines import create_engine
from models.engines.base import Engine, PreparesBytes
from models.types import FPS, Avatar, EngineParams

T = TypeVar("T")

DEFAULT_LOOKAHEAD_MS = 120.0
"""An agent's face: 120 ms of right context (viseme agreement 0.73 vs 0.76 at the engine's 200 ms)
keeps TTS-audio-in → image-out near 0.22 s p50 instead of 0.25-0.30 s on a loaded machine."""


@dataclass(frozen=True, slots=True)
class AvatarOptions:
    """What an integration needs to build a face: the portrait and the engine."""

    image: Path | bytes | np.ndarray
    engine: str = "cpu"
    weights_dir: Path | None = None
    device: str | None = None
    params: EngineParams = field(default_factory=EngineParams)
    output_rate: int = 24_000
    cushion_ms: float = DEFAULT_CUSHION_MS
    lookahead_ms: float = DEFAULT_LOOKAHEAD_MS
    """The CPU engine's right context (server.settings.cpu_lookahead_ms says what it trades)."""


def prepare_avatar(options: AvatarOptions, engine: Engine | None = None) -> tuple[Engine, Avatar]:
    """Build (or reuse) the engine and analyse the portrait once. Blocking: call off the loop."""
    lookahead = max(1, round(options.lookahead_ms * FPS / 1000))
    eng = engine or create_engine(options.engine, options.weights_dir, options.device, lookahead)
    image = options.image
    if isinstance(image, Path):
        image = image.read_bytes()
    if isinstance(image, bytes):
        if not isinstance(eng, PreparesBytes):
            raise TypeError(f"engine {eng.name!r} needs a decoded RGB array, not file bytes")
        return eng, eng.prepare_bytes(image, options.params)
    return eng, eng.prepare(image, options.params)


class AvatarRuntime:
    """One agent session's face: push speech, clear on barge-in, iterate paced frames."""

    def __init__(
        self,
        stream_factory: Callable[[], AvatarStream],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facestream-avatar")
        self._factory = stream_factory
        self._avatar: AvatarStream | None = None
        self._clock = clock
        self._sleep = sleep
        self._closed = False
        self._inbox: deque[tuple] = deque()  # (op, *args), applied by the worker before each tick
        self._inbox_lock = threading.Lock()
        self.frame_size: tuple[int, int] = (0, 0)  # (width, height) of the frames, once opened
        self.late_ticks = 0  # ticks that started more than one frame period behind the clock

    @classmethod
    async def open(cls, options: AvatarOptions, engine: Engine | None = None, **kw: object) -> AvatarRuntime:
        """Prepare the avatar (face analysis, a few hundred ms) off the loop and open its stream."""
        eng, avatar = await asyncio.to_thread(prepare_avatar, options, engine)

        def factory() -> AvatarStream:
            stream = eng.open_stream(avatar, options.params)
            return AvatarStream(stream, options.output_rate, options.cushion_ms)

        runtime = cls(factory, **kw)  # type: ignore[arg-type]
        runtime.frame_size = avatar.size
        await runtime._call(runtime._ensure)
        return runtime

    def _ensure(self) -> AvatarStream:
        if self._avatar is None:
            self._avatar = self._factory()
        return self._avatar

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("AvatarRuntime is closed")
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn)

    @property
    def output_rate(self) -> int:
        return self._ensure().output_rate

    def _post(self, *op: object) -> None:
        if self._closed:
            raise RuntimeError("AvatarRuntime is closed")
        with self._inbox_lock:
            self._inbox.append(op)

    def _apply_inbox(self) -> AvatarStream:
        """Worker thread: apply what the loop posted, in order."""
        avatar = self._ensure()
        with self._inbox_lock:
            ops = list(self._inbox)
            self._inbox.clear()
        for op, *args in ops:
            if op == "audio":
                avatar.push_audio(*args)  # type: ignore[arg-type]
            elif op == "end":
                avatar.end_segment()
            else:
                avatar.clear()
        return avatar

    async def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Buffer speech; applied before the next tick (never waits for a render)."""
        self._post("audio", np.array(pcm, copy=True), sample_rate)

    async def end_segment(self) -> None:
        self._post("end")

    async def clear(self) -> float:
        """Barge-in: speech posted before this call is dropped and the next frame is idle (CPU
        engine). Returns the seconds of speech that were buffered (approximate: read unlocked)."""
        buffered = self._avatar.buffered_s if self._avatar is not None else 0.0
        with self._inbox_lock:
            self._inbox = deque(op for op in self._inbox if op[0] != "audio")
            self._inbox.append(("clear",))
        return buffered

    async def status(self) -> tuple[float, int]:
        """(seconds of speech buffered, speech frames held by the engine)."""

        def read() -> tuple[float, int]:
            avatar = self._apply_inbox()
            return avatar.buffered_s, avatar.pending_frames

        return await self._call(read)

    async def frames(self) -> AsyncIterator[AvatarFrame]:
        """Yield one frame every 1/25 s until ``aclose``; frame n is due at start + n/25 s."""
        period = 1.0 / FPS
        start = self._clock()
        n = 0
        while not self._closed:
            due = start + n * period
            wait = due - self._clock()
            if wait > 0:
                await self._sleep(wait)
            elif -wait > period:
                self.late_ticks += 1
            try:
                frame = await self._call(lambda: self._apply_inbox().tick())
            except RuntimeError:
                if self._closed:
                    return
                raise
            n += 1
            yield frame

    async def aclose(self) -> None:
        if self._closed:
            return
        avatar, self._avatar = self._avatar, None
        if avatar is not None:
            await asyncio.get_running_loop().run_in_executor(self._worker, avatar.close)
        self._closed = True
        self._worker.shutdown(wait=False, cancel_futures=True)
