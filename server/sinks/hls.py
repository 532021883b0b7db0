"""Recovery from a dead encoder: restart the session's ffmpeg behind an ``EXT-X-DISCONTINUITY``.

Why restart instead of failing: a live viewer is better served by a one-segment glitch than by
a stream that ends because ffmpeg was OOM-killed or crashed once. The new writer appends to the
same playlist (``HlsSink(resume=True)``: numbering continues, nothing published is overwritten,
players reset their decoders at the discontinuity). Restarts are capped (``max_restarts``) so a
writer that cannot live (disk full, broken settings) ends the session with a clear ``failed``
state and an ended playlist instead of looping. The ticks that were queued in the dead process
are lost (at most the sink's queue, ~2 s); the session clock is not delayed, so audio and video
stay locked after the restart.

Both HLS modes get the same policy: the TS ``HlsSink`` resumes its playlist on disk, the LL-HLS
``LlHlsSink`` resumes its in-memory timeline (``server.sinks.llhls``). A writer is judged dead
when ffmpeg exits or a pipe breaks, when it stops publishing (the progress check), or when it
stops *accepting* ticks: a stalled encoder (SIGSTOP'd, wedged, starved) fills its queue and the
tick write times out (``SinkStalledError``); it is killed and replaced instead of being waited on
forever. Whenever ``write`` or ``end`` gives up, the writer is closed (no ffmpeg outlives the
failure) and its playlist ended, so players stop polling.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hls.errors import SinkError, SinkFailedError, SinkStalledError
from hls.llhls.sink import LlHlsSink
from hls.playlist import append_endlist
from hls.sink import HlsSink, PublishedSegment
from models.types import AudioSlice, VideoFrame
from server.errors import StorageUnavailableError

log = logging.getLogger("facestream.faults")

Writer = HlsSink | LlHlsSink
SinkFactory = Callable[[bool], Writer]
"""``factory(resume)`` → an unstarted HlsSink on the session's directory, or an LlHlsSink that
continues the session's timeline when ``resume``."""


def progress_of(sink: Writer) -> int:
    """How much a writer has published (parts in LL mode, segments in TS mode): what the restart
    policy watches. Parts count across restarts (one timeline); segments per writer."""
    if isinstance(sink, LlHlsSink):
        return sink.parts_published
    return len(sink.segments_published)


class RestartingSink:
    """A TickSink that replaces its HlsSink when ffmpeg dies, at most ``max_restarts`` times.

    Called from the session's clock thread only (``write``/``end``), plus ``close`` from the owner.
    ``on_restart(count, reason)`` is told about each restart (metrics, logs).

    A writer that stays alive but publishes nothing is treated as dead too: on a full disk ffmpeg
    keeps running and only logs that it cannot open the next segment, so the playlist would just
    stop. Once per second ``write`` checks that something was published within
    ``publish_timeout_s`` (default 6 segment lengths, at least 6 s). A writer that stops taking
    ticks (``SinkStalledError``: its ~2 s queue stayed full for the write timeout) is replaced at
    once: a SIGSTOP'd or wedged ffmpeg would otherwise fail the session and stay alive.
    """

    def __init__(
        self,
        factory: SinkFactory,
        max_restarts: int,
        on_restart: Callable[[int, str], None] | None = None,
        label: str = "",
        publish_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.max_restarts = max_restarts
        self._on_restart = on_restart
        self._label = label
        self._lock = threading.Lock()
        self._closed = False
        self._clock = clock
        self.restarts = 0
        self.stalls = 0  # restarts caused by an encoder that stopped taking ticks
        self.sink = factory(False)
        segment = self.sink.segment_seconds
        self.publish_timeout_s = publish_timeout_s or max(6.0, 6 * segment)
        self._since = clock()  # when the current writer started or last published
        self._published = 0
        self._next_check = 0.0

    def start(self) -> RestartingSink:
        self.sink.start()
        self._since = self._clock()
        return self

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None:
        try:
            self.sink.write(frame, audio, timeout)
            self._check_progress()
        except SinkStalledError as e:
            self.stalls += 1
            self._replace(SinkFailedError(f"encoder stalled: {e}"), frame, audio, timeout)
        except SinkFailedError as e:
            self._replace(e, frame, audio, timeout)
        except SinkError:
            self._end_playlist_of_dead_writer()
            raise

    def _replace(
        self, error: SinkFailedError, frame: VideoFrame, audio: AudioSlice, timeout: float | None
    ) -> None:
        """Restart (or, at the cap, give up) and hand the tick that failed to the new writer."""
        self._restart(error)
        try:
            self.sink.write(frame, audio, timeout)
        except SinkError:
            self._end_playlist_of_dead_writer()
            raise

    def _check_progress(self) -> None:
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + 1.0
        try:
            published = progress_of(self.sink)
        except OSError:  # the directory briefly unreadable: no progress seen, judged next second
            published = self._published
        if published != self._published:
            self._published, self._since = published, now
        elif now - self._since > self.publish_timeout_s:
            tail = " | ".join(self.sink.stderr_tail[-2:]) or "no message"
            what = "part" if isinstance(self.sink, LlHlsSink) else "segment"
            raise SinkFailedError(f"no {what} published for {now - self._since:.0f} s (ffmpeg: {tail})")

    def end(self, timeout: float = 10.0) -> Any:
        try:
            return self.sink.end(timeout)
        except SinkFailedError:
            self._end_playlist_of_dead_writer()
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sink = self.sink
        sink.close()

    # -- the live writer's state, forwarded explicitly (the writer changes on each restart) -----
    @property
    def inner(self) -> Writer:
        return self.sink

    @property
    def segment_paths(self) -> list[Path]:
        return self.sink.segment_paths

    @property
    def published_count(self) -> int:
        return self.sink.published_count

    @property
    def segments_published(self) -> list[PublishedSegment]:
        """TS writers only (an LL writer's segments are in its timeline)."""
        sink = self.sink
        return sink.segments_published if isinstance(sink, HlsSink) else []

    @property
    def queued_ticks(self) -> int:
        return self.sink.queued_ticks

    @property
    def pid(self) -> int | None:
        return self.sink.pid

    @property
    def alive(self) -> bool:
        return self.sink.alive

    @property
    def stderr_tail(self) -> list[str]:
        return self.sink.stderr_tail

    @property
    def playlist_path(self) -> Path | None:
        """The TS playlist file (None in LL mode: that playlist lives in memory)."""
        sink = self.sink
        return sink.playlist_path if isinstance(sink, HlsSink) else None

    def _restart(self, error: SinkFailedError) -> None:
        with self._lock:
            old = self.sink
            if self._closed or self.restarts >= self.max_restarts:
                old.close()
                self._end_playlist_of(old)
                cap = f" after {self.restarts} restart(s)" if self.restarts else ""
                raise SinkFailedError(f"the video encoder died{cap}: {error}") from error
            old.close()
            self.restarts += 1
            count = self.restarts
            log.warning(
                "%s: encoder died (%s); restarting it (%d/%d)", self._label, error, count, self.max_restarts
            )
            fresh = self._factory(True)
            try:
                fresh.start()
            except BaseException:
                fresh.close()
                self._end_playlist_of(old)
                raise
            self.sink = fresh
            self._since, self._published = self._clock(), 0
        if self._on_restart is not None:
            with contextlib.suppress(Exception):
                self._on_restart(count, str(error))

    def _end_playlist_of_dead_writer(self) -> None:
        with self._lock:
            sink = self.sink
        sink.close()
        self._end_playlist_of(sink)

    @staticmethod
    def _end_playlist_of(sink: Writer) -> None:
        """Tell players the stream is over even though ffmpeg could not write the end itself."""
        if isinstance(sink, LlHlsSink):
            sink.abandon()
            return
        path = sink.playlist_path
        with contextlib.suppress(OSError):
            if path.exists() and "#EXT-X-ENDLIST" not in path.read_text():
                append_endlist(path)


_STORAGE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.ENOENT,
}


def storage_error(exc: BaseException) -> StorageUnavailableError | None:
    """The domain error for a failure to create a session's files (507), or None if it is not one.

    Covers the storage dir being full, read-only, unwritable or replaced by a file, and an encoder
    that could not start writing there.
    """
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return StorageUnavailableError(f"session storage is unavailable: {exc.strerror or exc}")
    if isinstance(exc, SinkFailedError) and any(
        word in str(exc) for word in ("No space left", "Read-only file system", "Permission denied")
    ):
        return StorageUnavailableError(f"session storage is unavailable: {exc}")
    return None
