"""Small seeded gaze saccades: the eyes dwell, then jump quickly to a nearby point or back.

Like blinks, targets are drawn sequentially from a per-stream generator as frames advance in
index order, so gaze is a pure function of (seed, frame index).
"""

from __future__ import annotations

import numpy as np

from models.motion.seeding import component_rng
from models.types import FPS

GAZE_COMPONENT = 3
SACCADE_FRAMES = 2
"""A saccade lasts 40-80 ms: two frames of travel."""
DWELL_S = (0.8, 3.5)
RANGE_X = 0.35
RANGE_Y = 0.2


class GazeTrack:
    """Yields (gaze_x, gaze_y) in iris-travel units for consecutive frames (style added later)."""

    def __init__(self, seed: int) -> None:
        self._rng = component_rng(seed, GAZE_COMPONENT)
        self._from = (0.0, 0.0)
        self._to = (0.0, 0.0)
        self._move_start = 0
        self._next_move = self._dwell(0)

    def _dwell(self, start: int) -> int:
        return start + round(float(self._rng.uniform(*DWELL_S)) * FPS)

    def frame(self, index: int) -> tuple[float, float]:
        while index >= self._next_move:
            self._from = self._to
            if self._rng.random() < 0.35:  # look back at the camera
                target = (0.0, 0.0)
            else:
                x = float(np.clip(self._rng.normal(0.0, RANGE_X / 2), -RANGE_X, RANGE_X))
                y = float(np.clip(self._rng.normal(0.0, RANGE_Y / 2), -RANGE_Y, RANGE_Y))
                target = (x, y)
            self._to = target
            self._move_start = self._next_move
            self._next_move = self._dwell(self._next_move)
        progress = min(1.0, (index - self._move_start + 1) / SACCADE_FRAMES)
        ease = progress * progress * (3.0 - 2.0 * progress)
        return (
            self._from[0] + ease * (self._to[0] - self._from[0]),
            self._from[1] + ease * (self._to[1] - self._from[1]),
        )
