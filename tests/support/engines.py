"""Test engines declared against ``models.engines.base``: ``ProbeEngine`` stamps each frame's
timeline index as a barcode and its loudness, so a test reads A/V alignment off decoded frames."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from hls.barcode import stamp_barcode
from models.types import SAMPLES_PER_FRAME, Avatar, EngineParams, VideoFrame


class ProbeStream:
    def __init__(self, size: int, lookahead: int, cost_s: float) -> None:
        self.lookahead_frames = lookahead
        self._size = size
        self._cost = cost_s
        self._audio = np.zeros(0, np.float32)
        self._base = 0  # timeline sample of _audio[0]
        self._next = 0
        self.pushed = 0
        self.contexts: list[int] = []

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        if context is not None:
            self.contexts.append(len(context))
        self._audio = np.concatenate([self._audio, pcm.astype(np.float32)])
        self.pushed += len(pcm)
        return self._emit(lambda n: (n + 1 + self.lookahead_frames) * SAMPLES_PER_FRAME <= self.pushed)

    def _emit(self, ready: Callable[[int], bool]) -> list[VideoFrame]:
        out = []
        while ready(self._next):
            a = self._next * SAMPLES_PER_FRAME - self._base
            seg = self._audio[a : a + SAMPLES_PER_FRAME]
            rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if len(seg) else 0.0
            level = int(min(235, 16 + rms * 2000))
            img = np.full((self._size, self._size, 3), level, np.uint8)
            out.append(VideoFrame(self._next, stamp_barcode(img, self._next), speech=rms > 0.01))
            self._next += 1
        drop = self._next * SAMPLES_PER_FRAME - self._base
        self._audio, self._base = self._audio[drop:], self._base + drop
        if self._cost:
            time.sleep(self._cost * len(out))
        return out

    def flush(self) -> list[VideoFrame]:
        """Every frame whose audio was pushed, the last one possibly partial (the contract)."""
        return self._emit(lambda n: n * SAMPLES_PER_FRAME < self.pushed)

    def close(self) -> None:
        pass


class ProbeEngine:
    """Frame k = barcode(k) + grey level ∝ RMS of timeline audio in frame k."""

    name = "probe"

    def __init__(self, size: int = 128, lookahead: int = 3, cost_s: float = 0.0) -> None:
        self.size, self.lookahead, self.cost_s = size, lookahead, cost_s
        self.streams: list[ProbeStream] = []

    def prepare(self, image: np.ndarray, params: EngineParams) -> Avatar:
        img = np.full((self.size, self.size, 3), 16, np.uint8)
        return Avatar(
            img, np.zeros((478, 3), np.float32), (0, 0, self.size, self.size), (self.size, self.size)
        )

    def open_stream(self, avatar: Avatar, params: EngineParams) -> ProbeStream:
        s = ProbeStream(self.size, self.lookahead, self.cost_s)
        self.streams.append(s)
        return s
