"""SessionRegistry: creates, finds, expires and deletes sessions; owns capacity and storage.

Capacity: at most ``settings.max_sessions`` sessions may be *live* (created, streaming or
draining, plus creations in progress); beyond that ``create`` raises CapacityError (503 +
Retry-After). Finished sessions (complete/failed) hold no threads or ffmpeg; they stay listed,
with their files, until idle for ``session_idle_timeout_s`` so viewers and status calls still work.

Storage: every session directory is ``storage_dir / <uuid4 hex>`` made from a server-generated id;
no client string ever reaches a path. Directories of a previous run (ids this process does not
know) are removed at startup.

All public coroutines run on the event loop; blocking work (face analysis, ffmpeg start, closing,
file removal) goes to the executor's ``blocking`` pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hls.sink import HlsSink
from models.engines.base import Engine
from models.face.decode import decode_image_bytes
from models.types import ENGINE_SAMPLE_RATE, EngineParams
from server.compute.executor import InferenceExecutor
from server.errors import CapacityError
from server.session.ids import is_valid_session_id, new_session_id, validate_session_id
from server.session.session import Session, SessionConfig
from server.settings import Settings
from server.sinks.debug import BarcodeStampingSink, FrameLogs
from server.sinks.hls import RestartingSink, storage_error
from server.sinks.llhls import create_llhls_sink
from server.sinks.recording import SegmentRetention

log = logging.getLogger("facestream.registry")

SinkFactory = Callable[[Path, int, int], Any]


class SessionRegistry:
    def __init__(self, settings: Settings, engine: Engine, executor: InferenceExecutor) -> None:
        self.settings = settings
        self.engine = engine
        self.executor = executor
        self._sessions: dict[str, Session] = {}
        self._realtime: dict[str, Any] = {}
        self.frame_logs = FrameLogs()  # only filled when settings.debug_barcode
        self._creating = 0
        self.metrics: Any = None  # server.metrics.ServerMetrics, set by the app

    # -- creation ------------------------------------------------------------------------------
    def live_count(self) -> int:
        return self._creating + sum(1 for s in self._sessions.values() if not s.state.terminal)

    async def create(
        self, image: bytes, params: EngineParams, chunk_duration: float, audio_sample_rate: int
    ) -> Session:
        if self.live_count() >= self.settings.max_sessions:
            raise CapacityError(
                f"the server is at capacity ({self.settings.max_sessions} live sessions); try again shortly",
                retry_after=10,
            )
        self._creating += 1
        try:
            avatar = await self._blocking(self._prepare, image, params)
            session_id = new_session_id()
            directory = self.settings.storage_dir / session_id
            try:
                session = await self._blocking(
                    self._start_session,
                    session_id,
                    directory,
                    avatar,
                    params,
                    chunk_duration,
                    audio_sample_rate,
                )
            except BaseException as e:
                await self._blocking(shutil.rmtree, directory, True)
                mapped = storage_error(e)
                if mapped is None:
                    raise
                raise mapped from e
            self._sessions[session_id] = session
            log.info("session %s started (%dx%d)", session_id, *avatar.size)
            return session
        finally:
            self._creating -= 1

    def _prepare(self, image: bytes, params: EngineParams) -> Any:
        prepare_bytes = getattr(self.engine, "prepare_bytes", None)
        if callable(prepare_bytes):
            return prepare_bytes(image, params)
        return self.engine.prepare(decode_image_bytes(image), params)

    def _start_session(
        self,
        session_id: str,
        directory: Path,
        avatar: Any,
        params: EngineParams,
        chunk_duration: float,
        audio_sample_rate: int,
    ) -> Session:
        s = self.settings
        directory.mkdir(parents=True, exist_ok=False)
        width, height = avatar.size
        if s.hls_mode == "ll":  # one encoder per session either way (server.sinks.llhls)
            sink = create_llhls_sink(s, directory, width, height)
        else:  # a dead ffmpeg is restarted behind a discontinuity, at most max_sink_restarts times
            sink = RestartingSink(
                lambda resume: HlsSink(
                    directory,
                    width,
                    height,
                    sample_rate=s.output_sample_rate,
                    segment_seconds=s.segment_seconds,
                    list_size=s.live_window_segments,
                    event_playlist=s.keep_all_segments,
                    # recordings (server.sinks.recording): files outlive the live window, pruned below
                    delete_old_segments=not s.keep_all_segments and s.recording_max_seconds <= 0,
                    preset=s.hls_preset,
                    resume=resume,
                ),
                s.max_sink_restarts,
                self._sink_restarted,
                f"session {session_id}",
            )
        if s.debug_barcode:
            sink = BarcodeStampingSink(sink, self.frame_logs.open(session_id))
        stream = None
        try:
            sink.start()
            stream = self.engine.open_stream(avatar, params)
            window = max(1, round(chunk_duration * ENGINE_SAMPLE_RATE))
            config = SessionConfig(
                lead_frames=s.lead_frames,
                render_margin_frames=s.render_margin_frames,
                window_samples=window,
                max_pending_samples=max(window, round(s.max_queued_speech_s * ENGINE_SAMPLE_RATE)),
                out_rate=s.output_sample_rate,
            )
            session = Session(
                session_id, directory, avatar, params, stream, sink, self.executor, config,
                engine_name=getattr(self.engine, "name", s.engine),
                raw_sample_rate=audio_sample_rate, chunk_duration=chunk_duration,
            )  # fmt: skip
            if self.metrics is not None:
                self.metrics.watch_session(session)
            session.start()
            retention = SegmentRetention.for_settings(directory, s, self.executor.blocking)
            if s.hls_mode == "ll":  # the LL sink keeps its own archive (server.sinks.llhls)
                retention = None
            if retention is not None:
                session.subscribe(retention)
            return session
        except BaseException:
            sink.close()
            if stream is not None:
                stream.close()
            raise

    def _sink_restarted(self, count: int, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.ffmpeg_restarts.inc()

    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        """Hold one live-session slot while a session is built outside ``create`` (progressive
        renders, server.session.progressive), then ``adopt`` it; CapacityError when full."""
        if self.live_count() >= self.settings.max_sessions:
            raise CapacityError(
                f"the server is at capacity ({self.settings.max_sessions} live sessions); try again shortly",
                retry_after=10,
            )
        self._creating += 1
        try:
            yield
        finally:
            self._creating -= 1

    def adopt(self, session: Any) -> None:
        """Register a session built elsewhere (same duck type as Session: status, close, directory…)."""
        self._sessions[session.session_id] = session

    # -- lookup and removal --------------------------------------------------------------------
    def get(self, session_id: str) -> Session:
        from server.errors import SessionNotFoundError

        session = self._sessions.get(validate_session_id(session_id))
        if session is None:
            raise SessionNotFoundError(f"session {session_id} not found (it may have expired)")
        return session

    def realtime(self, session_id: str) -> Any:
        """The session as a ``server.session.realtime_port.RealtimeSessionPort`` (created on first use, on
        the event loop); pass this method as ``get_session`` to the real-time router."""
        from server.session.realtime import RealtimeSessionAdapter

        session = self.get(session_id)
        adapter = self._realtime.get(session.session_id)
        if adapter is None:
            adapter = RealtimeSessionAdapter(
                session, self.executor.blocking, debug_barcode=self.settings.debug_barcode
            )
            self._realtime[session.session_id] = adapter
        return adapter

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    async def delete(self, session_id: str) -> None:
        session = self.get(session_id)
        self._forget(session.session_id)
        await self._blocking(self._dispose, session, False)

    async def expire_idle(self, now: float | None = None) -> list[str]:
        """Delete every session idle for longer than the timeout; returns their ids."""
        limit = self.settings.session_idle_timeout_s
        expired = [s for s in self._sessions.values() if s.idle_seconds(now) > limit]
        for s in expired:
            self._forget(s.session_id)
            log.info("session %s expired after %.0f s idle", s.session_id, s.idle_seconds(now))
        await asyncio.gather(*(self._blocking(self._dispose, s, False) for s in expired))
        return [s.session_id for s in expired]

    async def shutdown(self) -> None:
        """Graceful: end every playlist (``#EXT-X-ENDLIST``), stop everything. Files stay until the
        next start (they are removed then)."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        self._realtime.clear()
        await asyncio.gather(*(asyncio.to_thread(s.close, True) for s in sessions))

    def _forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        self._realtime.pop(session_id, None)
        self.frame_logs.close(session_id)

    @staticmethod
    def _dispose(session: Session, keep_files: bool) -> None:
        session.close(end_playlist=False)
        if not keep_files and is_valid_session_id(session.directory.name):
            shutil.rmtree(session.directory, ignore_errors=True)

    def clean_storage(self) -> int:
        """Remove session directories left by an earlier process (only uuid-named ones)."""
        root = self.settings.storage_dir
        root.mkdir(parents=True, exist_ok=True)
        removed = 0
        for child in root.iterdir():
            if child.is_dir() and is_valid_session_id(child.name) and child.name not in self._sessions:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor.blocking, fn, *args)
