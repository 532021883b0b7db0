"""The live LL-HLS state of one stream: init segment, parts grouped into segments, a bounded window.

Fragments from ``Fmp4Splitter`` become parts (``part_<msn>_<i>.m4s``) of the open segment; a
segment (``seg_<msn>.m4s``, the concatenation of its parts) closes when the first part of the
next one arrives, once its duration has reached the segment target (the preload hint already
names the next segment's part 0 by then). Why not close it with its own last part, one part
earlier: measured with hls.js 1.7 under load (benchmarks/glass_to_glass_llhls.py), a playlist
that completes a segment while hls.js is still loading an earlier part of it can leave hls.js
believing the segment loaded without its last part, and it then loads nothing for up to a
segment (hls/llhls/playlist.py). Closing with the next part needs hls.js two parts behind for
that, not one. The encoder's GOP is a whole number of parts and equal to the segment length
(our ffmpeg settings), so each segment still starts on a keyframe; each part records truthfully
whether it does.

Thread-safe: the packager thread adds fragments, HTTP handlers read and block on it. Time is
injected (``anchor`` = wall-clock time of media time 0) so tests need no real clock.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from hls.llhls.fragments import Fragment, InitSegment, TrackRun

INIT_URI = "init.mp4"
_RESOURCE = re.compile(r"^(?:seg_(\d+)|part_(\d+)_(\d+))\.m4s$")
_EPS = 1e-3


def part_uri(msn: int, index: int) -> str:
    return f"part_{msn}_{index}.m4s"


def segment_uri(msn: int) -> str:
    return f"seg_{msn}.m4s"


@dataclass(frozen=True, slots=True)
class Part:
    msn: int  # media sequence number of the segment it belongs to
    index: int  # position within that segment
    start: float  # media seconds
    duration: float
    independent: bool
    data: bytes

    @property
    def uri(self) -> str:
        return part_uri(self.msn, self.index)


@dataclass(slots=True)
class LlSegment:
    msn: int
    start: float
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    discontinuity: bool = False  # the first segment of a restarted encoder (EXT-X-DISCONTINUITY)

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)

    @property
    def uri(self) -> str:
        return segment_uri(self.msn)

    @property
    def independent(self) -> bool:
        return bool(self.parts) and self.parts[0].independent


@dataclass(frozen=True, slots=True)
class PlaylistState:
    segments: list[LlSegment]  # the window, in order; an open segment (parts only) last
    anchor: datetime
    part_target: float
    segment_target: float
    next_part: tuple[int, int] | None  # the preload hint
    ended: bool
    discontinuity_sequence: int = 0  # discontinuities before the first listed segment


class Readiness(Enum):
    """Answer to a blocking playlist reload (``_HLS_msn``/``_HLS_part``), RFC 8216bis §6.2.5.2."""

    READY = "ready"  # respond now
    WAIT = "wait"  # hold the request until ready (or the stream ends)
    BAD_REQUEST = "bad_request"  # msn beyond last + 2: respond 400 at once


class LlHlsTimeline:
    def __init__(
        self,
        anchor: datetime,
        part_target: float = 0.2,
        segment_target: float = 1.0,
        window_segments: int = 6,
        retain_segments: int = 4,
    ) -> None:
        if part_target <= 0 or segment_target < part_target or window_segments < 1:
            raise ValueError("need 0 < part_target <= segment_target and window_segments >= 1")
        self.anchor = anchor
        self.part_target = part_target
        self.segment_target = segment_target
        self.window_segments = window_segments
        self.retain_segments = retain_segments  # extra segments kept downloadable behind the window
        self.init: InitSegment | None = None
        self.segments: list[LlSegment] = []
        self.ended = False
        self._primary: int | None = None
        self._discontinuity_next = False
        self._discontinuities_evicted = 0
        self._parts_added = 0
        self._cond = threading.Condition()
        self._listeners: list[Callable[[], None]] = []
        self.version = 0  # bumped on every change: a cache key for rendered playlists

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (on the packager's thread, outside the lock) after every change, so an
        asyncio loop can wake its waiters with ``call_soon_threadsafe`` instead of a thread per waiter.
        It must return at once; an exception it raises is swallowed."""
        with self._cond:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _changed(self) -> None:
        """Under the lock: bump the version and wake blocked threads; then (caller) ``_tell``."""
        self.version += 1
        self._cond.notify_all()

    def _tell(self) -> None:
        with self._cond:
            listeners = list(self._listeners)
        for listener in listeners:
            # a closed loop or a broken listener must not stop the packager
            with contextlib.suppress(Exception):
                listener()

    # -- packager side ---------------------------------------------------------------------
    def set_init(self, init: InitSegment) -> None:
        """The stream's init segment. A restarted encoder sends its own: with the same settings it
        is byte-identical (ffmpeg writes no creation time in fragmented output) and ``init.mp4``
        stays valid; a different one replaces it."""
        video = [t for t in init.tracks.values() if t.kind == "vide"]
        with self._cond:
            if self.init is not None and self.init.data == init.data:
                return
            self.init = init
            self._primary = (video[0] if video else next(iter(init.tracks.values()))).track_id
            self._changed()
        self._tell()

    def add_fragment(self, frag: Fragment) -> Part:
        """Append one fragment as the next part; returns it. Timing comes from the video track."""
        part = self._add_fragment(frag)
        self._tell()
        return part

    def _add_fragment(self, frag: Fragment) -> Part:
        with self._cond:
            if self.init is None or self._primary is None:
                raise ValueError("fragment before the init segment")
            if self.ended:
                raise ValueError("fragment after end()")
            run = frag.runs.get(self._primary)
            if run is None and not frag.runs:
                raise ValueError(f"fragment {frag.sequence} has no samples")
            if run is None:  # e.g. a last fragment holding only the audio tail: time it by that track
                run = next(iter(frag.runs.values()))
                run = TrackRun(run.track_id, run.base_time, run.duration, run.samples, False)
            scale = self.init.tracks[run.track_id].timescale
            start, duration = run.base_time / scale, run.duration / scale
            if self.segments and self._full(self.segments[-1]):
                self.segments[-1].complete = True  # closed by the next segment's first part
            if not self.segments or self.segments[-1].complete:
                msn = self.segments[-1].msn + 1 if self.segments else 1
                self.segments.append(LlSegment(msn, start, discontinuity=self._discontinuity_next))
                self._discontinuity_next = False
            seg = self.segments[-1]
            part = Part(seg.msn, len(seg.parts), start, duration, run.starts_with_sync, frag.data)
            seg.parts.append(part)
            self._parts_added += 1
            self._evict()
            self._changed()
            return part

    def _full(self, seg: LlSegment) -> bool:
        """An open segment that has reached the target: it closes with the next part."""
        return not seg.complete and seg.duration >= self.segment_target - _EPS

    def mark_discontinuity(self) -> None:
        """The encoder was replaced: close the open segment where it is (a short segment is valid
        HLS) and start the next fragment's segment behind an ``EXT-X-DISCONTINUITY``. The new
        encoder's fragments must be moved to ``end_time`` (``fragments.shift_fragment``)."""
        with self._cond:
            if self.ended:
                return
            if self.segments and not self.segments[-1].parts:
                self.segments.pop()
            if self.segments:
                self.segments[-1].complete = True
                self._discontinuity_next = True
            self._changed()
        self._tell()

    @property
    def end_time(self) -> float:
        """Media seconds at the end of the last part (0 before the first): where a restarted
        encoder's output continues."""
        with self._cond:
            last = self.segments[-1] if self.segments else None
            return 0.0 if last is None else last.start + last.duration

    @property
    def parts_published(self) -> int:
        """Parts added so far (never decreases): a writer's progress, for stall detection."""
        with self._cond:
            return self._parts_added

    def end(self) -> None:
        """No more fragments: the open segment (if any) is complete and the playlist gets ENDLIST."""
        with self._cond:
            if self.segments and not self.segments[-1].parts:
                self.segments.pop()
            if self.segments:
                self.segments[-1].complete = True
            self.ended = True
            self._changed()
        self._tell()

    def _evict(self) -> None:
        keep = self.window_segments + self.retain_segments
        if len(self.segments) > keep:
            gone = self.segments[: len(self.segments) - keep]
            self._discontinuities_evicted += sum(s.discontinuity for s in gone)
            del self.segments[: len(self.segments) - keep]

    # -- reader side -----------------------------------------------------------------------
    @property
    def published_segments(self) -> int:
        """Segments players have seen so far, the open one included once it has a part (msns
        count from 1 and never skip, so this is the newest msn; evicted ones still count)."""
        with self._cond:
            return self.segments[-1].msn if self.segments and self.segments[-1].parts else (
                self.segments[-2].msn if len(self.segments) > 1 else 0
            )

    def snapshot(self) -> PlaylistState:
        """A consistent copy of what the playlist shows now (taken under one lock)."""
        with self._cond:
            complete = [s for s in self.segments if s.complete]
            listed = complete[-self.window_segments :]
            if self.segments and not self.segments[-1].complete:
                listed.append(self.segments[-1])
            first = listed[0].msn if listed else None
            before = sum(s.discontinuity for s in self.segments if first is not None and s.msn < first)
            return PlaylistState(
                [LlSegment(s.msn, s.start, list(s.parts), s.complete, s.discontinuity) for s in listed],
                self.anchor, self.part_target, self.segment_target, self._next_part(), self.ended,
                self._discontinuities_evicted + before,
            )  # fmt: skip

    def _next_part(self) -> tuple[int, int] | None:
        """(msn, index) of the part the encoder produces next: the preload hint. None once ended."""
        if self.ended:
            return None
        if not self.segments:
            return (1, 0)
        last = self.segments[-1]
        return (last.msn + 1, 0) if last.complete or self._full(last) else (last.msn, len(last.parts))

    def readiness(self, msn: int, part: int | None = None) -> Readiness:
        """Whether a playlist containing segment ``msn`` (and its part ``part``) can be served."""
        with self._cond:
            return self._readiness(msn, part)

    def _readiness(self, msn: int, part: int | None) -> Readiness:
        last = self.segments[-1] if self.segments else None
        last_msn = last.msn if last else 0
        if msn < 0 or (part is not None and part < 0) or msn > last_msn + 2:
            return Readiness.BAD_REQUEST
        if self.ended:
            return Readiness.READY
        if last is None or msn > last_msn:
            return Readiness.WAIT
        if part is not None and msn == last_msn and last.complete and part >= len(last.parts):
            return Readiness.WAIT  # past the segment's last part means part 0 of the next segment
        if msn < last_msn:
            return Readiness.READY
        if part is None:
            return Readiness.READY if last.complete else Readiness.WAIT
        return Readiness.READY if part < len(last.parts) else Readiness.WAIT

    def wait_until(self, msn: int, part: int | None = None, timeout: float = 3.0) -> Readiness:
        """Block (a worker thread, never the event loop) until ``readiness`` is not WAIT or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (state := self._readiness(msn, part)) is Readiness.WAIT:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return state

    def resource(self, name: str) -> bytes | None:
        """Bytes of ``init.mp4``, ``seg_<msn>.m4s`` (complete segments only) or ``part_<msn>_<i>.m4s``;
        None if unknown, not yet produced or already evicted (→ 404)."""
        with self._cond:
            if name == INIT_URI:
                return self.init.data if self.init else None
            m = _RESOURCE.match(name)
            if m is None:
                return None
            msn = int(m.group(1) or m.group(2))
            seg = next((s for s in self.segments if s.msn == msn), None)
            if seg is None:
                return None
            if m.group(1) is not None:
                return b"".join(p.data for p in seg.parts) if seg.complete else None
            index = int(m.group(3))
            return seg.parts[index].data if index < len(seg.parts) else None

    def completed_segment(self, msn: int) -> bytes | None:
        """The bytes of segment ``msn`` if it is complete and still held (for archiving), else None."""
        return self.resource(segment_uri(msn))

    def is_discontinuity(self, msn: int) -> bool:
        """Whether segment ``msn`` starts behind an ``EXT-X-DISCONTINUITY`` (False once evicted)."""
        with self._cond:
            return any(s.msn == msn and s.discontinuity for s in self.segments)

    def segment_duration(self, msn: int) -> float | None:
        """Media seconds of segment ``msn`` while it is held, else None."""
        with self._cond:
            seg = next((s for s in self.segments if s.msn == msn), None)
            return None if seg is None else seg.duration

    @property
    def next_part(self) -> tuple[int, int] | None:
        """(msn, index) of the part named by the preload hint (None once ended)."""
        with self._cond:
            return self._next_part()
