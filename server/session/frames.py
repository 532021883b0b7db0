"""Between the producer and the clock: rendered frames waiting for their tick, and lateness stats.

FrameQueue policy: the producer runs at most ``lead`` frames (+ one push) ahead of the clock, so the
queue is small by construction; ``capacity`` is a hard guard (a put beyond it raises, a bug). A frame
that arrives after its tick has passed is discarded (the clock already showed the previous frame
in its place — the clock never waits) and counted.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

import numpy as np

from models.types import VideoFrame


class FrameQueue:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._frames: dict[int, VideoFrame] = {}
        self._next_tick = 0
        self.dropped_late = 0

    def put(self, frame: VideoFrame) -> bool:
        """Queue ``frame``; False (and discarded) if its tick has already been emitted."""
        with self._lock:
            if frame.index < self._next_tick:
                self.dropped_late += 1
                return False
            if len(self._frames) >= self.capacity:
                raise RuntimeError(f"frame queue over capacity ({self.capacity})")
            self._frames[frame.index] = frame
            return True

    def take(self, index: int) -> VideoFrame | None:
        """The frame for tick ``index`` if rendered; forgets everything before it."""
        with self._lock:
            for stale in [k for k in self._frames if k < index]:
                del self._frames[stale]
            self._next_tick = index + 1
            return self._frames.pop(index, None)

    def discard_from(self, index: int) -> int:
        """Forget every queued frame from ``index`` on (barge-in re-renders them); returns how many."""
        with self._lock:
            gone = [k for k in self._frames if k >= index]
            for k in gone:
                del self._frames[k]
            return len(gone)

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)


class LatenessStats:
    """Per-frame lateness = render completion − deadline (seconds; negative = early), last ``keep`` frames."""

    def __init__(self, keep: int = 5_000) -> None:
        self._lock = threading.Lock()
        self._values: collections.deque[float] = collections.deque(maxlen=keep)
        self.count = 0
        self.late = 0  # frames completed after their deadline
        self.worst = float("-inf")
        self.observer: Callable[[float], None] | None = None  # e.g. a Prometheus histogram's observe

    def add(self, lateness: float) -> None:
        with self._lock:
            self._values.append(lateness)
            self.count += 1
            if lateness > 0:
                self.late += 1
            self.worst = max(self.worst, lateness)
        if self.observer is not None:
            self.observer(lateness)

    def values(self) -> np.ndarray:
        with self._lock:
            return np.fromiter(self._values, dtype=np.float64, count=len(self._values))

    def summary_ms(self) -> dict[str, float | int | None]:
        v = self.values()
        if v.size == 0:
            return {"frames": 0, "late": 0, "p50": None, "p99": None, "max": None}
        p50, p99 = np.percentile(v, [50, 99])
        return {
            "frames": self.count,
            "late": self.late,
            "p50": round(float(p50) * 1000, 2),
            "p99": round(float(p99) * 1000, 2),
            "max": round(float(v.max()) * 1000, 2),
        }
