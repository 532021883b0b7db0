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

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hls.barcode import stamp_barcode
from hls.base import TickSink
from models.types import AudioSlice, VideoFrame

MAX_RECORDS = 25 * 60 * 10
"""Hand-off times kept per session (the last 10 minutes at 25 fps, ~0.5 MB): older ones are dropped."""


class FrameHandoffLog:
    """Bounded, thread-safe record of (frame index, hand-off time in s since the epoch)."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._records: collections.deque[tuple[int, float]] = collections.deque(maxlen=max_records)
        self._lock = threading.Lock()

    def record(self, index: int, at: float) -> None:
        with self._lock:
            self._records.append((index, at))

    def pairs(self) -> list[tuple[int, float]]:
        with self._lock:
            return list(self._records)


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
"""Arrivals kept per session: 10 minutes of 20 ms messages (older ones are dropped)."""


class IngestLog:
    """Bounded, thread-safe (arrival time in s since the epoch, first timeline sample at 16 kHz)."""

    def __init__(self, max_records: int = MAX_INGEST_RECORDS) -> None:
        self._records: collections.deque[tuple[float, int]] = collections.deque(maxlen=max_records)
        self._lock = threading.Lock()

    def record(self, arrived: float, start_sample: int) -> None:
        with self._lock:
            self._records.append((arrived, start_sample))

    def pairs(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._records)
