"""Reference portrait preparation: IMTalker's crop rule on our face detector, resize to 512."""

from __future__ import annotations

import cv2
import numpy as np

from models.errors import ImageTooSmallError, NoFaceFoundError
from models.face.decode import normalize_rgb_array
from models.face.landmarks import FaceLandmarker
from models.imtalker.renderer import RENDER_SIZE

CROP_SCALE = 0.8
MIN_IMAGE_SIDE = 64
MIN_FACE_SIDE = 32


def imtalker_crop_box(
    face: tuple[int, int, int, int], width: int, height: int, scale: float = CROP_SCALE
) -> tuple[int, int, int, int]:
    """Square of half-side int(max(face w, h) * scale) centred on the face, shifted back inside
    the image, then cut to the shorter side (app.py's get_crop_coords)."""
    x0, y0, x1, y1 = face
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    half = int(max(x1 - x0, y1 - y0) * scale)
    left, top, right, bottom = cx - half, cy - half, cx + half, cy + half
    if left < 0:
        right, left = right - left, 0
    if top < 0:
        bottom, top = bottom - top, 0
    if right > width:
        left, right = left - (right - width), width
    if bottom > height:
        top, bottom = top - (bottom - height), height
    left, top = max(0, left), max(0, top)
    right, bottom = min(width, right), min(height, bottom)
    side = min(right - left, bottom - top)
    return left, top, left + side, top + side


def prepare_portrait(
    image: np.ndarray, crop: bool, landmarker: FaceLandmarker
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """-> (512x512 RGB uint8, its 478 landmarks, crop box in the source)."""
    rgb = normalize_rgb_array(image)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"image is {width}x{height}; at least {MIN_IMAGE_SIDE} px per side is needed"
        )
    boxes = landmarker.detect(rgb)
    if not boxes:
        raise NoFaceFoundError("no face found in the image")
    face = boxes[0]
    if max(face.width, face.height) < MIN_FACE_SIDE:
        raise ImageTooSmallError(
            f"the face is {face.width:.0f}x{face.height:.0f} px; at least {MIN_FACE_SIDE} px is needed"
        )
    if crop:
        box = imtalker_crop_box((int(face.x0), int(face.y0), int(face.x1), int(face.y1)), width, height)
    else:
        box = (0, 0, width, height)  # the reference stretches the whole image to 512x512
    region = rgb[box[1] : box[3], box[0] : box[2]]
    portrait = cv2.resize(region, (RENDER_SIZE, RENDER_SIZE), interpolation=cv2.INTER_CUBIC)
    landmarks = landmarker.mesh(portrait)
    if landmarks is None:
        raise NoFaceFoundError("a face was detected but its landmarks could not be located in the crop")
    return np.ascontiguousarray(portrait), landmarks.astype(np.float32), box
