"""Causal, gain-adaptive loudness envelope and voice gate, one value per 40 ms block.

Why dB with tracked floor and peak: the same voice can arrive at any gain, over digital silence
or over a noise bed. Measuring each block's level against a minimum-statistics noise floor (the
quietest non-silent block of the last seconds) and a decaying speech peak turns any level into
0..1 "how loud, for this speaker" without a calibration step, and keeps noise below the gate.
Everything is a function of the blocks seen so far, so the output is chunk-invariant.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

DIGITAL_SILENCE_DB = -90.0
"""Blocks quieter than this are digital silence (zeros, dither) and say nothing about the noise floor."""
FLOOR_WINDOW_BLOCKS = 200
"""Minimum-statistics window for the noise floor (8 s at 25 blocks/s)."""
FLOOR_PRIOR_DB = -60.0
FLOOR_PRIOR_BLOCKS = 25
"""While the window holds fewer non-silent blocks than this (the first second of sound at stream
start or after long digital silence) the floor is at most FLOOR_PRIOR_DB: speech there opens the
mouth at once, and a noise bed quieter than -50 dBFS stays closed even before it is measured."""
GATE_MARGIN_DB = 10.0
"""A block is voiced when it is this far above the floor (and the floor is not unknown)."""
GATE_HOLD_BLOCKS = 2
"""Blocks a voiced decision is held after the level drops (bridges stop closures)."""
DYNAMIC_RANGE_DB = 28.0
"""Span below the speech peak that maps onto jaw opening 0..1."""
PEAK_HEADROOM_DB = 6.0
PEAK_DECAY_DB = 0.12
"""Per voiced block (3 dB/s): the peak follows a speaker who gets quieter within seconds."""


@dataclass(frozen=True, slots=True)
class BlockLoudness:
    """Loudness of one block: level in dBFS, 0..1 normalised loudness, and the voice gate."""

    db: float
    level: float
    voiced: bool


def block_db(block: np.ndarray) -> float:
    """Mean-square level of one block in dBFS (a full-scale sine is -3 dB), floored at -100."""
    x = block.astype(np.float64)
    return float(10.0 * np.log10(np.dot(x, x) / max(len(x), 1) + 1e-10))


class LoudnessTracker:
    """Tracks noise floor and speech peak; maps each block to a 0..1 level and a voice gate."""

    def __init__(self) -> None:
        self._window: deque[float] = deque(maxlen=FLOOR_WINDOW_BLOCKS)
        self._peak: float | None = None
        self._hold = 0

    def _floor(self) -> float:
        audible = [d for d in self._window if d > DIGITAL_SILENCE_DB]
        floor = min(audible) if audible else FLOOR_PRIOR_DB
        if len(audible) < FLOOR_PRIOR_BLOCKS:
            floor = min(floor, FLOOR_PRIOR_DB)
        return floor

    def update(self, block: np.ndarray) -> BlockLoudness:
        db = block_db(block)
        self._window.append(db)
        threshold = self._floor() + GATE_MARGIN_DB
        above = db > threshold and db > DIGITAL_SILENCE_DB
        if above:
            self._hold = GATE_HOLD_BLOCKS
        elif self._hold > 0:
            self._hold -= 1
        voiced = above or self._hold > 0
        if above:
            if self._peak is None:
                self._peak = db + PEAK_HEADROOM_DB
            self._peak = max(db, self._peak - PEAK_DECAY_DB, threshold + 12.0)
        if not voiced or self._peak is None:
            return BlockLoudness(db=db, level=0.0, voiced=voiced)
        low = max(threshold - 4.0, self._peak - DYNAMIC_RANGE_DB)
        level = (db - low) / max(self._peak - low, 1e-6)
        return BlockLoudness(db=db, level=float(min(max(level, 0.0), 1.0)), voiced=voiced)
