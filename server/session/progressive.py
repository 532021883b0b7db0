"""``POST /api/audio-driven/stream``: a whole audio file rendered as fast as possible into HLS.

A ``ProgressiveSession`` is not clocked: ``OfflineRender`` pushes the whole clip through the engine
(deferred behind live sessions in the executor) and every frame goes straight to an ``HlsSink``
with an EVENT playlist (all segments listed and kept), which grows segment by segment and ends with
``#EXT-X-ENDLIST`` when the last frame is encoded. It counts against session capacity and is
registered with the SessionRegistry, so the chunked status/delete routes, ``/hls/<id>/…``, expiry
and the recording route treat it like any session: it has the attributes those edges use
(``session_id``, ``directory``, ``avatar``, ``sink``, ``state``, ``status()``, ``touch()``,
``idle_seconds()``, ``close()``). Feeding it answers 409: all its audio arrived with the request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from hls.sink import HlsSink
from models.engines.base import EngineStream
from models.types import FPS, Avatar, EngineParams
from server.compute.executor import InferenceExecutor
from server.compute.offline import OfflineRender, RenderCancelledError, TimelineAudio
from server.session.base import SessionLoad
from server.session.state import SessionState, StateMachine
from server.settings import Settings

log = logging.getLogger("facestream.progressive")


class ProgressiveSession:
    mode = "progressive"

    def __init__(
        self,
        session_id: str,
        directory: Path,
        avatar: Avatar,
        params: EngineParams,
        stream: EngineStream,
        sink: HlsSink,
        timeline: TimelineAudio,
        executor: InferenceExecutor,
        settings: Settings,
        engine_name: str = "",
    ) -> None:
        self.session_id = session_id
        self.directory = directory
        self.avatar = avatar
        self.params = params
        self.engine_name = engine_name
        self.sink = sink
        self.timeline = timeline
        self.created_at = time.time()
        self._created_mono = time.monotonic()
        self.last_activity = self._created_mono
        self.error: str | None = None
        self.raw_sample_rate = 0
        self.chunk_duration = 0.0
        self.lead_frames = 0
        self._stream = stream
        self._executor = executor
        self._state = StateMachine()
        defer = settings.batch_defer_s
        self.job = OfflineRender(stream, timeline, sink, executor, self._rendered, defer_s=defer)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._state.to(SessionState.STREAMING)
        self._state.to(SessionState.DRAINING)  # the whole audio is already here: it only plays out
        self.job.start()

    def _rendered(self, error: BaseException | None) -> None:
        """Render finished (worker thread): end the playlist on the blocking pool, not on a worker."""
        if error is None:
            self._executor.blocking.submit(self._end_playlist)
        elif not isinstance(error, RenderCancelledError):
            self._fail(f"render failed: {error}")

    def _end_playlist(self) -> None:
        try:
            self.sink.end()
            self._state.try_to(SessionState.COMPLETE)
            log.info(
                "progressive %s: %d frames in %.2f s (%.1f× real time)",
                self.session_id, self.job.frames_written, self.job.render_seconds, self.job.speed,
            )  # fmt: skip
        except Exception as e:
            self._fail(f"encoder failed: {e}")
        finally:
            self._release_stream()

    def _fail(self, message: str) -> None:
        if self._state.try_to(SessionState.FAILED):
            self.error = message
            log.error("progressive session %s failed: %s", self.session_id, message)
        with contextlib.suppress(Exception):
            self.sink.close()
        self._release_stream()

    def _release_stream(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()

    def close(self, end_playlist: bool = False) -> None:
        """Stop rendering, end (or abort) the playlist, release ffmpeg and the engine. Idempotent."""
        self.job.cancel()
        self.job.wait(30.0)
        if end_playlist and self._state.state is SessionState.DRAINING:
            with contextlib.suppress(Exception):
                self.sink.end()
        self.sink.close()
        self._release_stream()
        self._state.try_to(SessionState.CLOSED)

    # -- queries -------------------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self._state.state

    def load(self) -> SessionLoad:
        """What ``/metrics`` counts: frames rendered; a progressive render has no clock, so no ticks,
        staleness or lateness of its own."""
        return SessionLoad(frames_rendered=self.job.frames_written)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def idle_seconds(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.last_activity

    def status(self) -> dict[str, Any]:
        done = self.job.frames_written
        return {
            "session_id": self.session_id,
            "status": str(self._state.state),
            "mode": self.mode,
            "total_frames_generated": done,
            "buffer_samples": 0,
            "error": self.error,
            "created_at": self.created_at,
            "uptime_seconds": round(time.monotonic() - self._created_mono, 3),
            "engine": self.engine_name,
            "frames_rendered": done,
            "total_frames": self.timeline.frames,
            "audio_seconds": round(self.timeline.seconds, 3),
            "progress": round(done / self.timeline.frames, 4),
            "render_speed": round(self.job.speed, 2),
            "width": self.avatar.size[0],
            "height": self.avatar.size[1],
        }


def open_progressive(
    session_id: str,
    directory: Path,
    avatar: Avatar,
    params: EngineParams,
    timeline: TimelineAudio,
    engine: Any,
    executor: InferenceExecutor,
    settings: Settings,
) -> ProgressiveSession:
    """Create the directory, start the encoder and the render (blocking: run on the blocking pool,
    whose niceness the ffmpeg child inherits)."""
    directory.mkdir(parents=True, exist_ok=False)
    width, height = avatar.size
    sink = HlsSink(
        directory, width, height, FPS,
        sample_rate=timeline.out_rate,
        segment_seconds=settings.segment_seconds,
        event_playlist=True,
        delete_old_segments=False,
        write_timeout=None,  # no clock to keep: a fast renderer waits for the encoder
        preset=settings.hls_preset,
    )  # fmt: skip
    stream = None
    try:
        sink.start()
        stream = engine.open_stream(avatar, params)
        session = ProgressiveSession(
            session_id, directory, avatar, params, stream, sink, timeline, executor, settings,
            engine_name=engine.name,
        )  # fmt: skip
        session.start()
        return session
    except BaseException:
        sink.close()
        if stream is not None:
            stream.close()
        raise
