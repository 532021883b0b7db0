"""Scalar measurements on 478-point landmarks, used to re-measure what users see.

Tests and benchmarks re-detect landmarks on rendered frames and compare these numbers, instead
of trusting the renderer's own inputs. All are normalised by the inter-ocular distance (or the
face's own extent), so they are comparable across face sizes and crops.
"""

from __future__ import annotations

import numpy as np

from models.face import topology as topo

_LIP_PAIRS = ((82, 87), (13, 14), (312, 317))
_RIGHT_EAR = ((160, 144), (158, 153), (33, 133))
_LEFT_EAR = ((385, 380), (387, 373), (362, 263))


def _d(lms: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(lms[a, :2] - lms[b, :2]))


def interocular(lms: np.ndarray) -> float:
    right = lms[list(topo.RIGHT_EYE_CONTOUR), :2].mean(axis=0)
    left = lms[list(topo.LEFT_EYE_CONTOUR), :2].mean(axis=0)
    return float(np.linalg.norm(left - right))


def mouth_opening(lms: np.ndarray) -> float:
    """Mean inner-lip gap over the three central lip pairs, in inter-ocular distances."""
    return float(np.mean([_d(lms, a, b) for a, b in _LIP_PAIRS])) / interocular(lms)


def eye_aspect_ratios(lms: np.ndarray) -> tuple[float, float]:
    """(right, left) eye aspect ratio: lid distance / eye width (≈0.25-0.35 open, <0.1 closed)."""
    out = []
    for (a1, b1), (a2, b2), (c1, c2) in (_RIGHT_EAR, _LEFT_EAR):
        out.append((_d(lms, a1, b1) + _d(lms, a2, b2)) / (2.0 * _d(lms, c1, c2)))
    return out[0], out[1]


def _oval_box(lms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    oval = lms[list(topo.FACE_OVAL), :2]
    lo, hi = oval.min(axis=0), oval.max(axis=0)
    return (lo + hi) / 2.0, hi - lo


def head_yaw_proxy(lms: np.ndarray) -> float:
    """Nose tip's horizontal offset from the face-oval centre / oval width (+ = nose to image right)."""
    centre, size = _oval_box(lms)
    return float(lms[topo.NOSE_TIP, 0] - centre[0]) / float(size[0])


def head_pitch_proxy(lms: np.ndarray) -> float:
    """Nose tip's height between the eye line (0) and the chin (1): grows when the chin goes down."""
    eyes_y = float(
        (lms[list(topo.RIGHT_EYE_CONTOUR), 1].mean() + lms[list(topo.LEFT_EYE_CONTOUR), 1].mean()) / 2
    )
    return (float(lms[topo.NOSE_TIP, 1]) - eyes_y) / (float(lms[topo.CHIN, 1]) - eyes_y)


def gaze_proxy(lms: np.ndarray) -> float:
    """Mean iris-centre position across each eye, 0 = at the image-left corner, 1 = image-right."""
    out = []
    for centre, (c1, c2) in ((topo.RIGHT_IRIS[0], (33, 133)), (topo.LEFT_IRIS[0], (362, 263))):
        x_lo, x_hi = sorted((float(lms[c1, 0]), float(lms[c2, 0])))
        out.append((float(lms[centre, 0]) - x_lo) / (x_hi - x_lo))
    return float(np.mean(out))
