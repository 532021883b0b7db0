"""Geometry-only rendering: the avatar image warped by the rig's vertex displacements."""

from __future__ import annotations

import cv2
import numpy as np

from models.render.field import WarpField


def warp_image(image: np.ndarray, field: WarpField, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """A copy of ``image`` whose ROI is resampled from (map_x, map_y) (bilinear, edge-replicated)."""
    out = image.copy()
    roi = field.roi
    cv2.remap(
        image,
        map_x,
        map_y,
        cv2.INTER_LINEAR,
        dst=out[roi.y0 : roi.y1, roi.x0 : roi.x1],
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out
