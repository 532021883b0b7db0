"""Seeded eye blinks: irregular intervals, an asymmetric close/open shape, occasional doubles.

Blinks are scheduled sequentially from a per-stream random generator that advances only when a
blink is scheduled, and frames are produced in index order, so the blink track is a pure
function of (seed, frame index): chunk sizes cannot change it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.motion.seeding import component_rng
from models.types import FPS

BLINK_COMPONENT = 1

MIN_INTERVAL_S = 2.0
MAX_INTERVAL_S = 6.0
DOUBLE_BLINK_PROBABILITY = 0.12
CLOSING_FRACTION = 0.35
"""Lids close fast and reopen slower (about a third of the blink is closing)."""


@dataclass(frozen=True, slots=True)
class _Blink:
    start: int
    frames: int
    depth_left: float
    depth_right: float


def blink_profile(frame: int, frames: int) -> float:
    """Lid closure 0..1 at ``frame`` of a blink lasting ``frames``; one frame is always fully shut."""
    closed_at = round(CLOSING_FRACTION * frames)
    if frame < closed_at:
        return math.sin(0.5 * math.pi * (frame + 1) / (closed_at + 1))
    if frame == closed_at:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (frame - closed_at) / (frames - closed_at)))


class BlinkTrack:
    """Yields (left, right) lid closure for consecutive frames."""

    def __init__(self, seed: int) -> None:
        self._rng = component_rng(seed, BLINK_COMPONENT)
        self._blinks: list[_Blink] = []
        self._next_start = int(self._rng.integers(int(0.6 * FPS), int(3.0 * FPS)))

    def _schedule(self, start: int) -> None:
        rng = self._rng
        frames = int(rng.integers(4, 7))  # 160..240 ms
        depth = float(rng.uniform(0.92, 1.0))
        self._blinks.append(_Blink(start, frames, depth, depth * float(rng.uniform(0.96, 1.0))))
        end = start + frames
        if rng.random() < DOUBLE_BLINK_PROBABILITY:
            second = end + int(rng.integers(1, 4))
            frames2 = int(rng.integers(4, 6))
            self._blinks.append(_Blink(second, frames2, depth, depth))
            end = second + frames2
        interval = float(np.clip(rng.gamma(6.0, 0.6), MIN_INTERVAL_S, MAX_INTERVAL_S))
        self._next_start = max(end + 1, start + round(interval * FPS))

    def frame(self, index: int) -> tuple[float, float]:
        while index >= self._next_start:
            self._schedule(self._next_start)
        self._blinks = [b for b in self._blinks if b.start + b.frames > index]
        left = right = 0.0
        for b in self._blinks:
            if b.start <= index:
                shape = blink_profile(index - b.start, b.frames)
                left = max(left, b.depth_left * shape)
                right = max(right, b.depth_right * shape)
        return left, right
