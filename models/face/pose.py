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

MAX_YAW_DEG = 45.0
"""Refused beyond this. Measured on the evaluation faces: at 36° the warp still animates cleanly;
at 46° (a talking near-profile) the far lip corner is hidden and closing the mouth at rest tears
the lip line, while the re-detected lips no longer follow the voice (r 0.4-0.7)."""


def estimate_yaw(landmarks: np.ndarray) -> float:
    """Degrees, + = the face turned towards image right."""
    right, left = landmarks[CHEEK_RIGHT], landmarks[CHEEK_LEFT]
    return math.degrees(math.atan2(float(left[2] - right[2]), float(left[0] - right[0])))
