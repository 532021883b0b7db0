"""AudioChunkBuffer: the session's accepted speech at the engine rate, released in windows.

Policy (bounded, lossless): at most ``max_pending_samples`` may wait for the engine; a chunk that
would exceed it is refused whole with SpeechQueueFullError (→ 429 + Retry-After = the seconds
until enough has played), so nothing already accepted is ever dropped.

Windows: each ``take`` releases up to ``window_samples`` new samples plus the ``overlap`` fraction of
a window that precedes them as *context*. Context is audio the engine has already consumed; it
helps windowed models and is never rendered twice, so speech frames = speech seconds × 25.
When the timeline needs audio before a full window has arrived, ``take`` releases what there is.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np

from models.types import ENGINE_SAMPLE_RATE
from server.errors import SpeechQueueFullError


@dataclass(frozen=True, slots=True)
class AudioWindow:
    offset: int  # speech-stream position of pcm[0]
    pcm: np.ndarray  # new samples, float32
    context: np.ndarray  # up to overlap·window samples immediately before ``offset``

    @property
    def end(self) -> int:
        return self.offset + len(self.pcm)


class AudioChunkBuffer:
    """Thread-safe FIFO of speech samples with windowed release."""

    def __init__(
        self,
        window_samples: int,
        max_pending_samples: int,
        overlap: float = 0.2,
        sample_rate: int = ENGINE_SAMPLE_RATE,
    ) -> None:
        if window_samples < 1 or max_pending_samples < window_samples:
            raise ValueError("need 1 <= window_samples <= max_pending_samples")
        if not 0.0 <= overlap < 1.0:
            raise ValueError("overlap must be in [0, 1)")
        self.window_samples = window_samples
        self.max_pending_samples = max_pending_samples
        self.context_samples = round(window_samples * overlap)
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._parts: collections.deque[np.ndarray] = collections.deque()
        self._written = 0
        self._released = 0
        self._history = np.zeros(0, np.float32)

    @property
    def written(self) -> int:
        """Speech-stream position after the last appended sample."""
        return self._written

    @property
    def released(self) -> int:
        """Speech-stream position of the next sample ``take`` will release."""
        return self._released

    @property
    def pending(self) -> int:
        with self._lock:
            return self._written - self._released

    def check_room(self, n: int) -> None:
        """Raise SpeechQueueFullError if ``n`` more samples would exceed the bound."""
        with self._lock:
            pending = self._written - self._released
        excess = pending + n - self.max_pending_samples
        if excess > 0:
            raise SpeechQueueFullError(
                f"speech queue full: {pending / self.sample_rate:.1f} s queued, this chunk adds "
                f"{n / self.sample_rate:.1f} s, the limit is "
                f"{self.max_pending_samples / self.sample_rate:.0f} s; "
                "retry after some of it has played",
                retry_after=excess / self.sample_rate,
            )

    def append(self, pcm: np.ndarray) -> None:
        """Accept samples (callers check room first; appending never drops anything)."""
        if len(pcm) == 0:
            return
        with self._lock:
            self._parts.append(np.asarray(pcm, dtype=np.float32))
            self._written += len(pcm)

    def drop_pending(self) -> int:
        """Forget every sample not released yet (barge-in); returns how many."""
        with self._lock:
            n = self._written - self._released
            self._parts.clear()
            self._released = self._written
            self._history = np.zeros(0, np.float32)
            return n

    def take(self, max_samples: int | None = None) -> AudioWindow | None:
        """Release the next window (≤ window_samples, ≤ max_samples); None if nothing is pending."""
        with self._lock:
            n = min(self.window_samples, self._written - self._released)
            if max_samples is not None:
                n = min(n, max_samples)
            if n <= 0:
                return None
            out = np.empty(n, np.float32)
            filled = 0
            while filled < n:
                part = self._parts[0]
                k = min(len(part), n - filled)
                out[filled : filled + k] = part[:k]
                filled += k
                if k == len(part):
                    self._parts.popleft()
                else:
                    self._parts[0] = part[k:]
            window = AudioWindow(self._released, out, self._history)
            self._released += n
            if self.context_samples:
                self._history = np.concatenate([self._history, out])[-self.context_samples :]
            return window
