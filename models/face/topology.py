"""Named MediaPipe face-mesh (478-point) landmark groups and the face's triangle list.

Contours are ordered so that callers can draw/interpolate them as polylines. "Right"/"left"
are the subject's: the subject's right eye appears on the image's left.
"""

from __future__ import annotations

import itertools
from collections import Counter
from functools import lru_cache

import numpy as np

NUM_LANDMARKS = 478

UPPER_LIP_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_LIP_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_LIP_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_LIP_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_CORNERS = (61, 291)
INNER_LIP_MID = (13, 14)  # upper / lower inner lip centre

RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first, then the 4 ring points
LEFT_IRIS = (473, 474, 475, 476, 477)

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
CHEEK_RIGHT = 234  # near the subject's right ear
CHEEK_LEFT = 454


def eye_contour(upper: tuple[int, ...], lower: tuple[int, ...]) -> tuple[int, ...]:
    """Closed polygon: upper lid corner→corner, then lower lid back (without repeated corners)."""
    return tuple(upper) + tuple(reversed(lower[1:-1]))


RIGHT_EYE_CONTOUR = eye_contour(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER)
LEFT_EYE_CONTOUR = eye_contour(LEFT_EYE_UPPER, LEFT_EYE_LOWER)
INNER_MOUTH_CONTOUR = tuple(UPPER_LIP_INNER) + tuple(reversed(LOWER_LIP_INNER[1:-1]))


@lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:
    """(T, 3) int32 triangles of MediaPipe's face tessellation (holes at the eyes and mouth).

    MediaPipe ships only the edge list; triangles are its 3-cliques, minus the two spurious
    cliques whose three edges are each shared by three cliques (they overlap real faces).
    """
    import mediapipe as mp

    edges = mp.solutions.face_mesh.FACEMESH_TESSELATION
    adjacency: dict[int, set[int]] = {}
    for a, b in edges:
        adjacency.setdefault(a, set()).add(b)
        adjacency.setdefault(b, set()).add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in edges for c in adjacency[a] & adjacency[b]}
    use = Counter(e for t in cliques for e in itertools.combinations(t, 2))
    faces = [t for t in cliques if not all(use[e] >= 3 for e in itertools.combinations(t, 2))]
    return np.array(sorted(faces), dtype=np.int32)
