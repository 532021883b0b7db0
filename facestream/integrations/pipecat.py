"""Pipecat: ``FacestreamVideoService``, the talking head between a TTS and the output transport.

    pipeline = Pipeline([transport.input(), stt, llm, tts,
                         FacestreamVideoService(image=Path("face.jpg")),
                         transport.output()])

It consumes the TTS audio frames flowing downstream and re-emits them paced at 25 fps, each 40 ms
of audio (``TTSAudioRawFrame``) right after the ``OutputImageRawFrame`` it animates, both stamped
with the same ``pts`` (frame index × 40 ms). The image is queued with the audio
(``sync_with_audio``) so the transport shows it when its audio starts. In silence it keeps emitting
idle frames (blinks, gaze, breathing), image only. ``TTSStoppedFrame`` closes an utterance (its
tail is played, padded); ``InterruptionFrame`` / ``UserStartedSpeakingFrame`` drop the unplayed
speech and the next frame is idle (within one frame, 40 ms, on the CPU engine).

Two modes:

* in-process (``image=...``): the engine runs inside the agent on a worker thread. The CPU engine
  needs mediapipe 0.10.21 beside Pipecat's protobuf: it works with protobuf 6.x, not 5.29
  (``constraints/agent.txt``, docs/DEPENDENCIES.md).
* remote (``FacestreamVideoService.remote(server_url, image)``): a facestream server renders; see
  ``facestream.integrations.remote``.

Requires the ``[pipecat]`` extra (pipecat-ai 1.x).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from facestream.avatar import AvatarFrame
from facestream.runtime import AvatarOptions, AvatarRuntime
from models.types import FPS

NS_PER_FRAME = 1_000_000_000 // FPS
STALE_AUDIO_S = 0.3
"""After an interruption, TTS audio still in flight (queued upstream before the interruption
overtook it) is dropped until the next ``TTSStartedFrame``, a new TTS context, or this long."""
DRAIN_TIMEOUT_S = 30.0
"""On EndFrame the buffered speech is played out first, for at most this long."""


class AvatarBackend(Protocol):
    """What the service drives: the in-process ``AvatarRuntime`` or a remote server session."""

    async def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None: ...
    async def end_segment(self) -> None: ...
    async def clear(self) -> float: ...
    async def status(self) -> tuple[float, int]: ...
    def frames(self) -> object: ...  # AsyncIterator[AvatarFrame]
    async def aclose(self) -> None: ...


class FacestreamVideoService(FrameProcessor):
    """TTS audio in, talking-head video + the same audio out, paced and in sync."""

    def __init__(
        self,
        *,
        image: Path | bytes | np.ndarray | None = None,
        options: AvatarOptions | None = None,
        backend_factory: object | None = None,
        **kwargs: object,
    ) -> None:
        """``image`` (or full ``options``) for the in-process engine; ``backend_factory`` (an
        async callable returning an ``AvatarBackend``) for anything else, e.g. ``remote``."""
        super().__init__(**kwargs)
        if backend_factory is None:
            if options is None:
                if image is None:
                    raise ValueError("give image=, options= or backend_factory=")
                options = AvatarOptions(image=image)
            opts = options

            async def factory() -> AvatarBackend:
                return await AvatarRuntime.open(opts)

            backend_factory = factory
        self._factory = backend_factory
        self._backend: AvatarBackend | None = None
        self._pace_task: asyncio.Task | None = None
        self._muted_until = 0.0  # monotonic deadline of the post-interruption audio drop
        self._muted_context: str | None = None
        self.interruptions: list[float] = []  # monotonic times of handled interruptions (diagnostics)

    @classmethod
    def remote(
        cls,
        server_url: str,
        image: Path | bytes,
        *,
        api_key: str | None = None,
        sample_rate: int = 24_000,
        allow_loopback: bool = False,
        **kwargs: object,
    ) -> FacestreamVideoService:
        """Render on a facestream server: speech over its WebSocket ingest, video back over WebRTC
        (``facestream.integrations.remote``). ``sample_rate``: the TTS's rate (the session's)."""
        from facestream.integrations.remote import RemoteAvatar

        async def factory() -> AvatarBackend:
            return await RemoteAvatar.open(
                server_url, image, sample_rate=sample_rate, output_rate=sample_rate,
                api_key=api_key, allow_loopback=allow_loopback,
            )  # fmt: skip

        return cls(backend_factory=factory, **kwargs)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            await self._start()
        elif isinstance(frame, TTSStartedFrame):
            self._muted_until = 0.0
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            if self._backend is not None and not self._stale(frame):
                pcm = np.frombuffer(frame.audio, dtype=np.int16)
                if frame.num_channels > 1:
                    pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
                await self._backend.push_audio(pcm, frame.sample_rate)
        elif isinstance(frame, TTSStoppedFrame):
            if self._backend is not None:
                await self._backend.end_segment()
            await self.push_frame(frame, direction)
        elif isinstance(frame, (InterruptionFrame, UserStartedSpeakingFrame)):
            if self._backend is not None:
                await self._backend.clear()
                self.interruptions.append(time.monotonic())
                self._muted_until = time.monotonic() + STALE_AUDIO_S
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame):
            await self._drain()
            await self._stop()
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            await self._stop()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    def _stale(self, frame: TTSAudioRawFrame) -> bool:
        if not self._muted_until:
            self._muted_context = frame.context_id
            return False
        fresh = frame.context_id is not None and frame.context_id != self._muted_context
        if fresh or time.monotonic() >= self._muted_until:
            self._muted_until = 0.0
            self._muted_context = frame.context_id
            return False
        return True

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop()

    async def _start(self) -> None:
        """Open the backend (face analysis, or the remote session); a failure is fatal: an agent
        without its face should stop, not talk on with no video."""
        if self._backend is not None:
            return
        try:
            self._backend = await self._factory()  # type: ignore[operator]
        except Exception as e:
            await self.push_error(f"facestream avatar failed to start: {e}", exception=e, fatal=True)
            return
        self._pace_task = self.create_task(self._pace(self._backend))

    async def _pace(self, backend: AvatarBackend) -> None:
        async for frame in backend.frames():  # type: ignore[attr-defined]
            for out in _pipecat_frames(frame):
                await self.push_frame(out)

    async def _drain(self) -> None:
        if self._backend is None:
            return
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            buffered, pending = await self._backend.status()
            if buffered <= 0 and pending == 0:
                return
            await asyncio.sleep(1 / FPS)

    async def _stop(self) -> None:
        task, self._pace_task = self._pace_task, None
        backend, self._backend = self._backend, None
        if task is not None:
            await self.cancel_task(task)
        if backend is not None:
            await backend.aclose()


def _pipecat_frames(frame: AvatarFrame) -> list[Frame]:
    """The image first (queued with the audio, so it shows when its audio starts), then the audio."""
    h, w = frame.image.shape[:2]
    image = OutputImageRawFrame(image=frame.image.tobytes(), size=(w, h), format="RGB")
    image.pts = frame.index * NS_PER_FRAME
    if frame.audio is None:
        return [image]
    image.sync_with_audio = True
    audio = TTSAudioRawFrame(audio=frame.audio.tobytes(), sample_rate=frame.sample_rate, num_channels=1)
    audio.pts = frame.index * NS_PER_FRAME
    return [image, audio]
