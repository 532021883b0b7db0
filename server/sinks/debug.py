"""Debug mode for measuring glass-to-glass latency (``FACESTREAM_DEBUG_BARCODE=1``; never on by default).

Every frame handed to a session's HLS sink gets its timeline index stamped as a barcode
(``hls.barcode``) and the wall-clock time of the hand-off recorded. A browser page reads the
barcodes off the frames it shows (``static/latency-probe.js``); the difference of the two clocks is
what a viewer waits. Wall-clock (``time.time``) rather than monotonic time because the browser's
``performance.timeOrigin + now()`` is wall-clock too; ``/api/debug/clock`` lets the page measure
the offset between the two machines' clocks NTP-style.

Wiring (the server's owner): wrap the sink where the session is built,
``sink = BarcodeStampingSink(sink, logs.open(session_id))``, drop the log with ``logs.close(id)``
when the session goes, and mount ``server.api.debug`` with ``app.state.frame_logs``
set to the same ``FrameLogs``.
"""

from __future__ import annotations

import array
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hls.barcode import stamp_barcode
from hls.base import TickSink
from models.types import AudioSlice, VideoFrame

MAX_RECORDS = 25 * 60 * 10
"""Hand-off times kept per session (the last 10 minutes at 25 fps, 240 kB allocated up front so a
long session's memory stays flat): older ones are overwritten."""


class _PairRing:
    """Bounded, thread-safe ring of number pairs, oldest first when read.

    Two flat typed arrays rather than a deque of tuples: 16 bytes a record instead of ~120,
    allocated once, so a debug log neither grows a session's memory over its first ten minutes
    nor leaves allocator fragments behind when it goes.
    """

    def __init__(self, codes: str, max_records: int) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self._first: array.array[Any] = array.array(codes[0], bytes(8 * max_records))
        self._second: array.array[Any] = array.array(codes[1], bytes(8 * max_records))
        self._written = 0
        self._lock = threading.Lock()

    def _append(self, first: float, second: float) -> None:
        with self._lock:
            slot = self._written % len(self._first)
            self._first[slot] = first
            self._second[slot] = second
            self._written += 1

    def _pairs(self) -> list[tuple[Any, Any]]:
        with self._lock:
            size, written = len(self._first), self._written
            if written <= size:
                order: Iterable[int] = range(written)
            else:  # full: the oldest record sits where the next one goes
                start = written % size
                order = itertools.chain(range(start, size), range(start))
            return [(self._first[i], self._second[i]) for i in order]


class FrameHandoffLog(_PairRing):
    """(frame index, hand-off time in s since the epoch) of the frames handed to the sink."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        super().__init__("qd", max_records)

    def record(self, index: int, at: float) -> None:
        self._append(index, at)

    def pairs(self) -> list[tuple[int, float]]:
        return self._pairs()


class FrameLogs:
    """The logs of all live sessions, by session id (owned by the registry, read by the route)."""

    def __init__(self) -> None:
        self._logs: dict[str, FrameHandoffLog] = {}
        self._lock = threading.Lock()

    def open(self, session_id: str) -> FrameHandoffLog:
        with self._lock:
            return self._logs.setdefault(session_id, FrameHandoffLog())

    def get(self, session_id: str) -> FrameHandoffLog | None:
        with self._lock:
            return self._logs.get(session_id)

    def close(self, session_id: str) -> None:
        with self._lock:
            self._logs.pop(session_id, None)


class BarcodeStampingSink:
    """Wraps a sink (``inner``): stamps each frame's index, records the hand-off time, then writes it
    through. The rest of the ``TickSink`` contract is forwarded to ``inner`` as it is."""

    def __init__(self, inner: TickSink, log: FrameHandoffLog, clock: Callable[[], float] = time.time) -> None:
        self._inner = inner
        self.log = log
        self._clock = clock

    @property
    def inner(self) -> TickSink:
        return self._inner

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None:
        stamped = VideoFrame(frame.index, stamp_barcode(frame.image, frame.index), frame.speech, frame.motion)
        self.log.record(frame.index, self._clock())
        self._inner.write(stamped, audio, timeout)

    def start(self) -> BarcodeStampingSink:
        self._inner.start()
        return self

    def end(self, timeout: float = 10.0) -> object:
        return self._inner.end(timeout)

    def close(self) -> None:
        self._inner.close()

    @property
    def segment_paths(self) -> list[Path]:
        return self._inner.segment_paths

    @property
    def published_count(self) -> int:
        return self._inner.published_count

    @property
    def queued_ticks(self) -> int:
        return self._inner.queued_ticks


MAX_INGEST_RECORDS = 50 * 60 * 10
"""Arrivals kept per session: 10 minutes of 20 ms messages, 480 kB allocated up front (older ones
are overwritten)."""


class IngestLog(_PairRing):
    """(arrival time in s since the epoch, first timeline sample at 16 kHz) of each audio message."""

    def __init__(self, max_records: int = MAX_INGEST_RECORDS) -> None:
        super().__init__("dq", max_records)

    def record(self, arrived: float, start_sample: int) -> None:
        self._append(arrived, start_sample)

    def pairs(self) -> list[tuple[float, int]]:
        return self._pairs()
