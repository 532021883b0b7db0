"""The speech stream at the output rate (int16), read by the session clock one frame at a time.

Positions are absolute speech-stream sample numbers. Reads of samples not written yet yield
silence; samples written for positions the clock has already passed are discarded. Both can only
happen when a resampler's held-back tail is late, which the producer prevents by flushing first,
so they are safety nets, not a normal path. Memory is bounded by what the clock has not read yet.
"""

from __future__ import annotations

import collections
import threading

import numpy as np


class OutputAudioBuffer:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._parts: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._written = 0
        self._discarded = 0  # everything before this position is gone

    @property
    def written(self) -> int:
        return self._written

    @property
    def held_samples(self) -> int:
        """Samples kept in memory (what the clock may still read)."""
        with self._lock:
            return sum(len(data) for _, data in self._parts)

    def append(self, pcm: np.ndarray) -> None:
        """Append float32 samples in [-1, 1] (stored as int16)."""
        if len(pcm) == 0:
            return
        data = np.clip(np.round(np.asarray(pcm, np.float32) * 32767.0), -32768, 32767).astype(np.int16)
        with self._lock:
            start = self._written
            self._written += len(data)
            if self._written <= self._discarded:
                return
            if start < self._discarded:
                data, start = data[self._discarded - start :], self._discarded
            self._parts.append((start, data))

    def read_into(self, dst: np.ndarray, dst_offset: int, position: int, length: int) -> None:
        """Copy samples [position, position+length) into ``dst`` (unwritten ones stay as they are)."""
        end = position + length
        with self._lock:
            for start, data in self._parts:
                a, b = max(start, position), min(start + len(data), end)
                if a < b:
                    dst[dst_offset + a - position : dst_offset + b - position] = data[a - start : b - start]
                if start >= end:
                    break

    def drop_from(self, position: int) -> int:
        """Forget every sample at or after ``position`` (speech cut by an interrupt: no timeline run
        reads it any more); returns how many were freed. Later appends continue at ``written``."""
        freed = 0
        with self._lock:
            while self._parts:
                start, data = self._parts[-1]
                if start >= position:
                    self._parts.pop()
                    freed += len(data)
                elif start + len(data) > position:
                    keep = position - start
                    self._parts[-1] = (start, data[:keep].copy())  # a copy: the tail's memory goes
                    freed += len(data) - keep
                    break
                else:
                    break
        return freed

    def discard_before(self, position: int) -> None:
        with self._lock:
            self._discarded = max(self._discarded, position)
            while self._parts:
                start, data = self._parts[0]
                if start + len(data) <= position:
                    self._parts.popleft()
                elif start < position:
                    self._parts[0] = (position, data[position - start :])
                    break
                else:
                    break
