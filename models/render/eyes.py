"""The closed-lid look: a lash line along the lowered upper lid.

The warp already pulls the upper-lid skin down over the eye; what a photo of a closed eye adds
is the dark line where the lashes meet. Its colour is the darkest tone found around the eye
(lashes, brows, iris), so it matches the subject.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.face import topology as topo
from models.render.mesh import FaceFrame

EYES = ((topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER), (topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER))


class LidOverlay:
    def __init__(self, image: np.ndarray, ref_points: np.ndarray, frame: FaceFrame) -> None:
        self.iod = frame.iod
        self.thickness = max(1.0, 0.018 * frame.iod)
        self.feather = max(0.5, 0.006 * frame.iod)
        colours = []
        for upper, lower in EYES:
            pts = np.rint(ref_points[list(topo.eye_contour(upper, lower)), :2]).astype(np.int32)
            x, y, w, h = cv2.boundingRect(pts)
            pad = max(2, h // 2)
            patch = image[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad].reshape(-1, 3)
            if len(patch):
                lum = patch @ np.array([0.299, 0.587, 0.114])
                colours.append(patch[lum <= np.percentile(lum, 12)].mean(axis=0))
        dark = np.mean(colours, axis=0) if colours else np.array([40.0, 30.0, 30.0])
        self.lash_rgb = np.minimum(dark, 80.0).astype(np.float32)

    def paint(self, out: np.ndarray, deformed: np.ndarray, blink_right: float, blink_left: float) -> None:
        for (upper, _lower), blink in zip(EYES, (blink_right, blink_left), strict=True):
            strength = float(np.clip((blink - 0.35) / 0.55, 0.0, 1.0))
            if strength <= 0.0:
                continue
            strength = strength * strength * (3.0 - 2.0 * strength) * 0.85
            self._lash_line(out, deformed[list(upper)], strength)

    def _lash_line(self, out: np.ndarray, lid: np.ndarray, strength: float) -> None:
        pad = int(np.ceil(self.thickness + 3 * self.feather)) + 2
        h, w = out.shape[:2]
        x0, y0 = np.maximum(np.floor(lid.min(axis=0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(lid.max(axis=0)).astype(int) + pad + 1, [w, h])
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.rint((lid - [x0, y0]) * 8).astype(np.int32)
        thick = max(1, round(self.thickness))
        cv2.polylines(mask, [pts], False, (255,), thick, cv2.LINE_AA, shift=3)
        alpha = cv2.GaussianBlur(mask.astype(np.float32) * (strength / 255.0), (0, 0), self.feather)
        a = alpha[:, :, None]
        roi = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(roi * (1.0 - a) + self.lash_rgb * a + 0.5, 0, 255).astype(np.uint8)
