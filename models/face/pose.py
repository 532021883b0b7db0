"""Head yaw from the 478-point mesh, to refuse photos a single-image warp cannot animate.

Why the cheek depth: MediaPipe's mesh carries a per-point depth (same units as x); the line
between the two cheek contour points (234, 454) turns in the x–z plane exactly as the head turns,
so its angle is the yaw without a 3D model fit. Beyond ~45° the far half of the face is hidden and
warping it invents a face, so the analyzer raises a typed error there.
"""

from __future__ import annotations

import math

import numpy as np

from models.face.topology import CHEEK_LEFT, CHEEK_RIGHT

MAX_YAW_DEG = 50.0
"""Refused beyond this (heads turned up to ~45° animate; the estimate scatters by a few degrees)."""


def estimate_yaw(landmarks: np.ndarray) -> float:
    """Degrees, + = the face turned towards image right."""
    right, left = landmarks[CHEEK_RIGHT], landmarks[CHEEK_LEFT]
    return math.degrees(math.atan2(float(left[2] - right[2]), float(left[0] - right[0])))
