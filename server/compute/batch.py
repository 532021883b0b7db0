"""``POST /api/audio-driven``: one portrait + one whole audio file → a finished MP4.

Decode, face analysis and the encoder start run on the executor's low-priority ``blocking`` pool
(nice +5; the ffmpeg child and its pipe threads inherit that niceness, so the batch encoder also
yields the CPU to live sessions' encoders). Frames are rendered by ``OfflineRender`` on the
inference workers, deferred behind live sessions. At most ``settings.max_batch_renders`` renders
run at once; beyond that → CapacityError (503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hls.mp4 import Mp4Writer
from models.engines.base import Engine
from models.types import FPS, Avatar, EngineParams
from server.compute.avatar import prepare_avatar
from server.compute.executor import InferenceExecutor
from server.compute.offline import OfflineRender, TimelineAudio
from server.errors import CapacityError
from server.session.audio.decode import decode_audio_chunk
from server.settings import Settings

log = logging.getLogger("facestream.batch")


def prepare_inputs(
    engine: Engine, settings: Settings, image: bytes, audio: bytes, params: EngineParams, raw_rate: int
) -> tuple[Avatar, TimelineAudio]:
    """Audio first (cheap; 400/413 before face analysis), then the face. Blocking: call off the loop."""
    decoded = decode_audio_chunk(audio, raw_rate, settings.max_batch_audio_seconds)
    timeline = TimelineAudio.from_decoded(decoded, settings.output_sample_rate)
    return prepare_avatar(engine, image, params), timeline


@dataclass(frozen=True, slots=True)
class BatchResult:
    path: Path
    frames: int
    audio_seconds: float
    render_seconds: float

    @property
    def speed(self) -> float:
        return self.frames / FPS / self.render_seconds if self.render_seconds > 0 else 0.0


class BatchRenderer:
    """Owns the concurrency cap of whole-audio MP4 renders (event-loop side state only)."""

    def __init__(self, settings: Settings, engine: Engine, executor: InferenceExecutor) -> None:
        self.settings = settings
        self.engine = engine
        self.executor = executor
        self.active = 0
        self.completed = 0

    async def render(
        self, image: bytes, audio: bytes, params: EngineParams, raw_rate: int, out_path: Path
    ) -> BatchResult:
        if self.active >= self.settings.max_batch_renders:
            raise CapacityError(
                f"{self.active} whole-audio renders are running (the limit); try again shortly",
                retry_after=5,
            )
        self.active += 1
        try:
            avatar, timeline = await self._blocking(
                prepare_inputs, self.engine, self.settings, image, audio, params, raw_rate
            )
            return await self._render(avatar, timeline, params, out_path)
        finally:
            self.active -= 1

    async def _render(
        self, avatar: Avatar, timeline: TimelineAudio, params: EngineParams, out_path: Path
    ) -> BatchResult:
        loop = asyncio.get_running_loop()
        width, height = avatar.size
        writer = await self._blocking(
            Mp4Writer, out_path, width, height, FPS, timeline.out_rate, self.settings.hls_preset
        )
        stream = None
        try:
            stream = await self._blocking(self.engine.open_stream, avatar, params)
            done: asyncio.Future[BaseException | None] = loop.create_future()

            def settle(error: BaseException | None) -> None:
                if not done.done():
                    done.set_result(error)

            def on_done(error: BaseException | None) -> None:
                loop.call_soon_threadsafe(settle, error)

            defer = self.settings.batch_defer_s
            job = OfflineRender(stream, timeline, writer, self.executor, on_done, defer_s=defer)
            job.start()
            try:
                error = await done
            except asyncio.CancelledError:  # client went away: stop at the next step, then clean up
                job.cancel()
                await asyncio.shield(self._blocking(job.wait, 30.0))
                raise
            if error is not None:
                raise error
            await self._blocking(writer.close)
            self.completed += 1
            log.info(
                "batch render: %d frames (%.1f s audio) in %.2f s (%.1f× real time)",
                job.frames_written, timeline.seconds, job.render_seconds, job.speed,
            )  # fmt: skip
            return BatchResult(out_path, job.frames_written, timeline.seconds, job.render_seconds)
        except BaseException:
            await asyncio.shield(self._blocking(writer.abort))
            raise
        finally:
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor.blocking, fn, *args)
