"""SessionRegistry: creates, finds, expires and deletes sessions; owns capacity and storage.

Capacity: at most ``settings.max_sessions`` sessions may be *live* (created, streaming or
draining, plus creations in progress); beyond that ``create`` raises CapacityError (503 +
Retry-After). Finished sessions (complete/failed) hold no threads or ffmpeg; they stay listed,
with their files, for ``finished_session_retention_s`` from when a sweep first saw them finished
(at most ``max_finished_sessions``, oldest dropped first), so viewers and status calls still work
for a while but a client cannot pile them up; GETs do not extend that.

Storage: every session directory is ``storage_dir / <session id>`` (``[<node>-]<uuid4 hex>``);
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
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from models.engines.base import Engine
from models.types import Avatar, EngineParams
from server.compute.avatar import prepare_avatar
from server.compute.executor import InferenceExecutor
from server.compute.pools import live_ingest_pool
from server.errors import (
    CapacityError,
    NodeDrainingError,
    NotLiveSessionError,
    SessionFinishedError,
    SessionNodeLostError,
    SessionNotFoundError,
)
from server.session.base import SessionLike
from server.session.ids import is_valid_session_id, new_session_id, node_of, validate_session_id
from server.session.realtime import RealtimeSessionAdapter
from server.session.session import Session
from server.settings import Settings
from server.sinks.debug import FrameLogs
from server.sinks.hls import storage_error

log = logging.getLogger("facestream.registry")

SessionBuilder = Callable[[str, Path, Avatar, EngineParams, float, int], Session]
"""``build(session_id, directory, avatar, params, chunk_duration, audio_sample_rate)`` → a started
live session (blocking). ``server.assembly.LiveSessionBuilder`` is the one the app uses."""


class SessionRegistry:
    """Capacity, lookup, expiry and storage of every session; building is the builder's."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: InferenceExecutor,
        build: SessionBuilder,
        frame_logs: FrameLogs | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.executor = executor
        self._build = build
        self._sessions: dict[str, SessionLike] = {}
        self._realtime: dict[str, RealtimeSessionAdapter] = {}
        self.frame_logs = frame_logs or FrameLogs()  # only filled when settings.debug_barcode
        self._creating = 0
        self.draining = False
        self.ingest = live_ingest_pool()
        """Live feed decode (WebSocket, microphone, ``feed``): never behind face analysis or remux."""
        self._finished_at: dict[str, float] = {}  # when a sweep first saw a session finished
        """Set by the app's drain (server.drain): new sessions are refused, live ones continue."""

    # -- creation ------------------------------------------------------------------------------
    def live_count(self) -> int:
        return self._creating + sum(1 for s in self._sessions.values() if not s.state.terminal)

    async def create(
        self, image: bytes, params: EngineParams, chunk_duration: float, audio_sample_rate: int
    ) -> Session:
        self._admit()
        self._creating += 1
        try:
            avatar = await self._blocking(prepare_avatar, self.engine, image, params)
            session_id = new_session_id(self.settings.node_id)
            directory = self.settings.storage_dir / session_id
            try:
                session = await self._blocking(
                    self._build,
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

    def _admit(self) -> None:
        """CapacityError (503 + Retry-After) when no new session may start: draining or full."""
        if self.draining:
            raise NodeDrainingError(
                f"node {self.settings.node_id or 'this server'} is draining and takes no new sessions",
                retry_after=10,
            )
        if self.live_count() >= self.settings.max_sessions:
            raise CapacityError(
                f"the server is at capacity ({self.settings.max_sessions} live sessions); try again shortly",
                retry_after=10,
            )

    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        """Hold one live-session slot while a session is built outside ``create`` (progressive
        renders, server.session.progressive), then ``adopt`` it; CapacityError when full."""
        self._admit()
        self._creating += 1
        try:
            yield
        finally:
            self._creating -= 1

    def adopt(self, session: SessionLike) -> None:
        """Register a session built elsewhere (a progressive render, under ``reserve``)."""
        self._sessions[session.session_id] = session

    # -- lookup and removal --------------------------------------------------------------------
    def get(self, session_id: str) -> SessionLike:
        session = self._sessions.get(validate_session_id(session_id))
        owner = node_of(session_id)
        if session is None and owner is not None and owner != self.settings.node_id:
            raise SessionNodeLostError(
                f"session {session_id} belongs to node {owner}, which is unreachable (down, killed or "
                "removed); the session is lost: start a new one"
            )
        if session is None:
            raise SessionNotFoundError(f"session {session_id} not found (it may have expired)")
        return session

    def live(self, session_id: str) -> Session:
        """The live session with this id: 404 when unknown, 409 for a progressive render (no
        speech input, no real-time viewers)."""
        session = self.get(session_id)
        if not isinstance(session, Session):
            raise NotLiveSessionError(
                f"session {session_id} is a whole-audio render: it has no real-time input or viewers"
            )
        return session

    def realtime(self, session_id: str) -> RealtimeSessionAdapter:
        """The live session as a ``RealtimeSessionPort`` (created on first use, on the event loop);
        pass this method as ``get_session`` to the real-time router. 409 once it has finished:
        a finished session has nothing to stream and takes no speech."""
        session = self.live(session_id)
        if session.state.terminal:
            raise SessionFinishedError(f"session {session_id} is {session.state}: nothing streams any more")
        adapter = self._realtime.get(session.session_id)
        if adapter is None:
            adapter = RealtimeSessionAdapter(
                session, self.ingest, debug_barcode=self.settings.debug_barcode
            )
            self._realtime[session.session_id] = adapter
        return adapter

    def sessions(self) -> list[SessionLike]:
        return list(self._sessions.values())

    async def delete(self, session_id: str) -> None:
        session = self.get(session_id)
        self._forget(session.session_id)
        await self._blocking(self._dispose, session, False)

    async def expire_idle(self, now: float | None = None) -> list[str]:
        """Delete every session idle for longer than the timeout, and finished ones beyond their
        retention or the finished-count cap (oldest first); returns their ids."""
        limit = self.settings.session_idle_timeout_s
        expired = [s for s in self._sessions.values() if s.idle_seconds(now) > limit]
        expired += [s for s in self._finished_to_drop(now) if s not in expired]
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
        await asyncio.to_thread(self.ingest.shutdown, True, cancel_futures=True)

    def _finished_to_drop(self, now: float | None) -> list[SessionLike]:
        """Finished sessions past ``finished_session_retention_s`` (counted from when a sweep first
        saw them finished, so status or HLS GETs cannot extend it) or beyond ``max_finished_sessions``."""
        clock = time.monotonic() if now is None else now
        finished = [s for s in self._sessions.values() if s.state.terminal]
        for s in finished:
            self._finished_at.setdefault(s.session_id, clock)
        finished.sort(key=lambda s: self._finished_at[s.session_id])
        keep = self.settings.max_finished_sessions
        retention = self.settings.finished_session_retention_s
        over = finished[: max(0, len(finished) - keep)]
        old = [s for s in finished if clock - self._finished_at[s.session_id] > retention]
        return over + [s for s in old if s not in over]

    def _forget(self, session_id: str) -> None:
        self._finished_at.pop(session_id, None)
        self._sessions.pop(session_id, None)
        self._realtime.pop(session_id, None)
        self.frame_logs.close(session_id)

    @staticmethod
    def _dispose(session: SessionLike, keep_files: bool) -> None:
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
