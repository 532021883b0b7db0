"""Stateful resampling of a chunked stream: chunk boundaries are inaudible and counts are exact.

soxr's ResampleStream keeps the filter state between chunks (no clicks), but holds back a few
milliseconds of output until more input (or the end) arrives. The owner calls ``flush`` when the
stream pauses (the timeline needs the tail now) or ends; the next chunk then starts a fresh filter.
Totals are reconciled on every flush so that n input samples always yield exactly
round(n · out / in) output samples; the session schedules speech by that count.
"""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Mono float32 resampler to ``out_rate`` whose input rate may change between chunks."""

    def __init__(self, out_rate: int, quality: str = "HQ") -> None:
        self.out_rate = out_rate
        self.quality = quality
        self._stream: soxr.ResampleStream | None = None
        self._in_rate: int | None = None
        self._stream_in = 0  # input samples of the current filter
        self._base = 0  # expected output before the current filter
        self.expected = 0  # output samples promised so far
        self.emitted = 0  # output samples returned so far

    def expected_increment(self, n_in: int, in_rate: int) -> int:
        """How many output samples ``n_in`` more input samples at ``in_rate`` will be worth."""
        if in_rate != self._in_rate:
            return round(n_in * self.out_rate / in_rate)
        return self._base + round((self._stream_in + n_in) * self.out_rate / in_rate) - self.expected

    def process(self, pcm: np.ndarray, in_rate: int) -> np.ndarray:
        """Resample the next chunk (may return fewer samples than promised until ``flush``)."""
        parts = []
        if self._in_rate is not None and in_rate != self._in_rate:
            parts.append(self.flush())
        if self._in_rate is None:
            self._in_rate = in_rate
            self._stream_in = 0
            self._base = self.expected
            if in_rate != self.out_rate:
                self._stream = soxr.ResampleStream(
                    in_rate, self.out_rate, 1, dtype="float32", quality=self.quality
                )
        self._stream_in += len(pcm)
        self.expected = self._base + round(self._stream_in * self.out_rate / in_rate)
        out = pcm.astype(np.float32, copy=True) if self._stream is None else self._stream.resample_chunk(pcm)
        parts.append(out)
        result = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.emitted += len(out)
        return result

    def flush(self) -> np.ndarray:
        """Return the held-back tail, padded/trimmed so that emitted == expected; reset the filter."""
        tail = np.zeros(0, np.float32)
        if self._stream is not None:
            tail = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        need = self.expected - self.emitted
        if need > len(tail):
            tail = np.concatenate([tail, np.zeros(need - len(tail), np.float32)])
        else:
            tail = tail[: max(need, 0)]
        self.emitted += len(tail)
        self._stream, self._in_rate, self._stream_in = None, None, 0
        self._base = self.expected
        return tail
