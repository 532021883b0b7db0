"""Portrait variants for robustness tests and benchmarks: grayscale, rotation, and synthetic
glasses and beard drawn on a real face (the lip region partly hidden, as users' photos are)."""

from __future__ import annotations

import cv2
import numpy as np


def grayscale(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _face_points(rgb: np.ndarray) -> np.ndarray:
    from models.face import FaceLandmarker

    lm = FaceLandmarker()
    boxes = lm.detect(rgb)
    pts = lm.mesh(rgb, boxes[0] if boxes else None)
    assert pts is not None, "the overlay needs a face"
    return pts


def with_glasses(rgb: np.ndarray) -> np.ndarray:
    """Dark round frames with a faint lens tint drawn over both eyes."""
    from models.face import topology as topo

    out = rgb.copy()
    pts = _face_points(rgb)
    iod = float(
        np.linalg.norm(
            pts[list(topo.LEFT_EYE_CONTOUR), :2].mean(0) - pts[list(topo.RIGHT_EYE_CONTOUR), :2].mean(0)
        )
    )
    centres = []
    for contour in (topo.RIGHT_EYE_CONTOUR, topo.LEFT_EYE_CONTOUR):
        c = pts[list(contour), :2].mean(0)
        centres.append(c)
        axes = (int(0.42 * iod), int(0.3 * iod))
        lens = out.copy()
        cv2.ellipse(lens, (int(c[0]), int(c[1])), axes, 0, 0, 360, (60, 70, 90), -1, cv2.LINE_AA)
        out = cv2.addWeighted(lens, 0.18, out, 0.82, 0)
        cv2.ellipse(
            out, (int(c[0]), int(c[1])), axes, 0, 0, 360, (25, 20, 20), max(2, int(0.06 * iod)), cv2.LINE_AA
        )
    a, b = centres
    cv2.line(
        out,
        (int(a[0] + 0.42 * iod), int(a[1])),
        (int(b[0] - 0.42 * iod), int(b[1])),
        (25, 20, 20),
        max(2, int(0.05 * iod)),
        cv2.LINE_AA,
    )
    return out


def with_beard(rgb: np.ndarray) -> np.ndarray:
    """A textured dark beard and moustache over the chin, jaw and upper lip (lip line partly hidden)."""
    from models.face import topology as topo

    pts = _face_points(rgb)
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    oval = pts[list(topo.FACE_OVAL), :2]
    nose_y = pts[topo.NOSE_TIP, 1]
    lower = oval[oval[:, 1] > nose_y + 0.1 * (pts[topo.CHIN, 1] - nose_y)]
    hull = cv2.convexHull(np.concatenate([lower, pts[list(topo.MOUTH_CORNERS), :2]]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    mouth = np.concatenate([pts[list(topo.UPPER_LIP_OUTER), :2], pts[list(topo.LOWER_LIP_OUTER), :2]]).astype(
        np.int32
    )
    cv2.fillConvexPoly(mask, cv2.convexHull(mouth), 0)
    # moustache: a band above the upper lip that overlaps its outer edge
    up = pts[list(topo.UPPER_LIP_OUTER), :2]
    band = np.concatenate(
        [up - [0, 0.35 * (pts[topo.CHIN, 1] - nose_y)], up[::-1] + np.array([0.0, 2.0])]
    ).astype(np.int32)
    cv2.fillPoly(mask, [band], 255)
    rng = np.random.default_rng(5)
    hair = (rng.random((h, w)) * 60 + 20).astype(np.float32)
    hair = cv2.GaussianBlur(hair, (0, 0), 0.8)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 3.0)[:, :, None] * 0.92
    colour = np.stack([hair * 0.9, hair * 0.7, hair * 0.55], axis=2)
    return (rgb * (1 - soft) + colour * soft + 0.5).astype(np.uint8)
