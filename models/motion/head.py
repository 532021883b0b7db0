"""Head motion: breathing, slow seeded drift, and nods that follow speech emphasis.

Drift and breathing are closed-form functions of time (seeded frequencies and phases); the nod
is a damped spring driven by loudness rises while speaking, advanced once per frame in index
order. Both are therefore functions of (seed, frame index, the speech signal) only.
"""

from __future__ import annotations

import math

from models.motion.seeding import component_rng
from models.types import FPS

HEAD_COMPONENT = 2
DRIFT_AMPLITUDE_DEG = (0.9, 1.3, 0.6)
"""Peak of the slow idle drift per axis (pitch, yaw, roll): a degree or so, never a sway."""
BREATH_AMPLITUDE_DEG = 0.35
NOD_GAIN_DEG = 5.0
NOD_HZ = 1.6
NOD_DAMPING = 0.55
EMPHASIS_SMOOTHING = 0.25
"""One-pole coefficient of the slow loudness a rise is measured against (~0.15 s)."""


class HeadMotion:
    """Yields (pitch, yaw, roll) in degrees for consecutive frames."""

    def __init__(self, seed: int) -> None:
        rng = component_rng(seed, HEAD_COMPONENT)
        self._drift: list[list[tuple[float, float, float]]] = []
        for peak in DRIFT_AMPLITUDE_DEG:
            weights = rng.dirichlet([2.0, 2.0, 2.0])
            freqs = rng.uniform(0.04, 0.3, size=3)
            phases = rng.uniform(0.0, 2.0 * math.pi, size=3)
            parts = zip(weights, freqs, phases, strict=True)
            self._drift.append([(peak * float(w), float(f), float(p)) for w, f, p in parts])
        self._breath_hz = float(rng.uniform(0.2, 0.3))
        self._breath_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self._sway_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self._slow_level = 0.0
        self._nod = 0.0
        self._nod_velocity = 0.0

    def frame(self, index: int, speech: float, level: float) -> tuple[float, float, float]:
        t = index / FPS
        angles = [sum(a * math.sin(2.0 * math.pi * f * t + p) for a, f, p in axis) for axis in self._drift]
        angles[0] += BREATH_AMPLITUDE_DEG * math.sin(2.0 * math.pi * self._breath_hz * t + self._breath_phase)
        # emphasis: loudness above its own recent mean, only while speaking
        emphasis = max(0.0, level - self._slow_level) * speech
        self._slow_level += EMPHASIS_SMOOTHING * (level - self._slow_level)
        omega = 2.0 * math.pi * NOD_HZ
        dt = 1.0 / FPS
        spring = omega * omega * (NOD_GAIN_DEG * emphasis - self._nod)
        accel = spring - 2.0 * NOD_DAMPING * omega * self._nod_velocity
        self._nod_velocity += dt * accel
        self._nod += dt * self._nod_velocity
        angles[0] += self._nod
        angles[1] += 0.8 * speech * math.sin(2.0 * math.pi * 0.35 * t + self._sway_phase)
        return angles[0], angles[1], angles[2]
