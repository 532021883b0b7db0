"""One portrait → the frame every output is derived from, plus its 478 landmarks.

Once per session: decode (bytes) or validate (array), find the largest face, then either cut a
square head-and-shoulders crop at ``OUTPUT_SIDE``² (``crop=True``) or keep the whole picture with
its long side ≤ ``OUTPUT_SIDE`` (``crop=False``). Landmarks are re-measured on the output image
itself, so they are exact for what the renderer warps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from models.errors import FaceTurnedAwayError, ImageTooSmallError, NoFaceFoundError
from models.face.decode import DEFAULT_MAX_PIXELS, decode_upload, normalize_rgb_array
from models.face.landmarks import FaceBox, FaceLandmarker, square_region
from models.face.pose import MAX_YAW_DEG, estimate_yaw
from models.face.topology import CHIN, FACE_OVAL, FOREHEAD

OUTPUT_SIDE = 512
MIN_IMAGE_SIDE = 64
MIN_FACE_SIDE = 32
"""A 32-px face (a thumbnail, a 170² avatar) still gets a usable mesh; upscaled it is soft, not wrong."""
CROP_FACE_SCALE = 2.0
"""Crop side as a multiple of the forehead-to-chin height: head, some hair and the neck."""
CROP_CENTER_UP = 0.04
"""Shift of the crop centre above the face centre, as a fraction of the crop side (room for hair)."""
CROP_MIN_FACE_SCALE = 1.3
"""Where the photo is too tight for the full margin, the crop shrinks down to this multiple of the
face before it leaves the photo: real pixels beat invented ones."""
DETECT_PAD = 0.5
"""Second detection try on the photo padded by this share of its size per side: the detector
misses faces that fill (or overflow) the frame, as in a tight crop."""
SMALL_IMAGE_SIDE = 256
"""Images with a shorter side than this are also tried upscaled: the detector misses tiny faces."""


@dataclass(slots=True)
class FaceAnalysis:
    image: np.ndarray  # (H, W, 3) uint8 RGB, even H and W
    landmarks: np.ndarray  # (478, 3) float32 in image pixels
    crop_box: tuple[int, int, int, int]
    source_size: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)
    face_box: tuple[int, int, int, int] | None = None
    """The animated face in source pixels (after EXIF rotation)."""
    faces_found: int = 1
    """Faces detected in the photo; with several, the largest and most central one is animated."""


class FaceAnalyzer:
    """Thread-safe (the landmarker pools its MediaPipe graphs); share one per process."""

    def __init__(
        self, max_pixels: int = DEFAULT_MAX_PIXELS, landmarker: FaceLandmarker | None = None
    ) -> None:
        self.max_pixels = max_pixels
        self._landmarker = landmarker or FaceLandmarker()

    def analyze_bytes(self, data: bytes, crop: bool = True) -> FaceAnalysis:
        t0 = time.perf_counter()
        upload = decode_upload(data, self.max_pixels)
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = self.analyze(upload.rgb, crop=crop)
        if upload.scale != 1.0:  # report the crop in the uploaded image's own pixels
            result.crop_box = _scaled_box(result.crop_box, upload.scale)
            if result.face_box is not None:
                result.face_box = _scaled_box(result.face_box, upload.scale)
            result.source_size = upload.source_size
        result.timings_ms["decode"] = decode_ms
        result.timings_ms["total"] += decode_ms
        return result

    def analyze(self, image: np.ndarray, crop: bool = True) -> FaceAnalysis:
        t_start = time.perf_counter()
        rgb = normalize_rgb_array(image)
        h, w = rgb.shape[:2]
        if h * w > self.max_pixels:
            from models.errors import InvalidImageError

            raise InvalidImageError(f"image has {w}x{h} pixels, more than the {self.max_pixels} allowed")
        if min(h, w) < MIN_IMAGE_SIDE:
            raise ImageTooSmallError(f"image is {w}x{h}; at least {MIN_IMAGE_SIDE} px per side is needed")
        boxes = detect_faces(self._landmarker, rgb)
        t_detect = time.perf_counter()
        if not boxes:
            raise NoFaceFoundError("no face found in the image")
        box = pick_face(boxes, w, h)
        if max(box.width, box.height) < MIN_FACE_SIDE:
            raise ImageTooSmallError(
                f"the face is {box.width:.0f}x{box.height:.0f} px; at least {MIN_FACE_SIDE} px is needed"
            )
        source_lms = self._landmarker.mesh(rgb, box)
        if source_lms is None:  # a face cut by the frame edge: the mesh wants room around it
            source_lms = _mesh_padded(self._landmarker, rgb, box)
        if source_lms is None:
            raise NoFaceFoundError("a face was detected but its landmarks could not be located")
        yaw = estimate_yaw(source_lms)
        if abs(yaw) > MAX_YAW_DEG:
            raise FaceTurnedAwayError(
                f"the face is turned about {abs(yaw):.0f}° from the camera; at most {MAX_YAW_DEG:.0f}° "
                "can be animated — use a photo facing the camera more"
            )
        if crop:
            out, crop_box = _crop_square(rgb, source_lms)
        else:
            out, crop_box = _fit_whole(rgb)
        scale = out.shape[1] / (crop_box[2] - crop_box[0])
        mapped = _map_landmarks(source_lms, crop_box, scale)
        out_box = _landmark_box(mapped)
        if max(out_box.width, out_box.height) < MIN_FACE_SIDE:
            raise ImageTooSmallError(
                f"the face is only {out_box.width:.0f} px wide in the {out.shape[1]}x{out.shape[0]} output; "
                "use crop=true or a closer portrait"
            )
        landmarks = self._landmarker.mesh(out, out_box)
        if landmarks is None:  # the output is a clean resample; fall back to the mapped points
            landmarks = mapped
        t_end = time.perf_counter()
        return FaceAnalysis(
            image=out,
            landmarks=landmarks.astype(np.float32),
            crop_box=crop_box,
            source_size=(w, h),
            face_box=(round(box.x0), round(box.y0), round(box.x1), round(box.y1)),
            faces_found=len(boxes),
            timings_ms={
                "detect": (t_detect - t_start) * 1e3,
                "mesh": (t_end - t_detect) * 1e3,
                "total": (t_end - t_start) * 1e3,
            },
        )


def _crop_square(rgb: np.ndarray, lms: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    oval = lms[list(FACE_OVAL), :2]
    face_h = float(np.linalg.norm(lms[CHIN, :2] - lms[FOREHEAD, :2]))
    face_w = float(oval[:, 0].max() - oval[:, 0].min())
    face = max(face_h, face_w * 1.15)
    h, w = rgb.shape[:2]
    # the full margin where the photo has it, else shrink (not below CROP_MIN_FACE_SCALE) to stay inside
    side = round(min(CROP_FACE_SCALE * face, max(CROP_MIN_FACE_SCALE * face, min(w, h))))
    cx = float(oval[:, 0].min() + oval[:, 0].max()) / 2.0
    cy = float(oval[:, 1].min() + oval[:, 1].max()) / 2.0 - CROP_CENTER_UP * side
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    # slide the square back inside the photo as far as the face allows (it stays in the crop)
    x0 = _slide_inside(x0, side, w, float(oval[:, 0].min()), float(oval[:, 0].max()))
    y0 = _slide_inside(y0, side, h, float(lms[FOREHEAD, 1]), float(lms[CHIN, 1]))
    out = square_region(rgb, x0, y0, side, OUTPUT_SIDE)
    if x0 < 0 or y0 < 0 or x0 + side > w or y0 + side > h:
        out = _soften_padding(out, x0, y0, side, w, h)
    return out, (x0, y0, x0 + side, y0 + side)


def _slide_inside(start: int, side: int, extent: int, face_lo: float, face_hi: float) -> int:
    """Move [start, start+side) towards [0, extent) while it still contains [face_lo, face_hi]
    with a 5 % margin (a square wider than the photo overflows both sides equally)."""
    target = min(max(start, 0), extent - side) if side <= extent else round((extent - side) / 2)
    margin = 0.05 * side
    target = min(target, round(face_lo - margin))
    target = max(target, round(face_hi + margin - side))
    return int(target)


def detect_faces(landmarker: FaceLandmarker, rgb: np.ndarray) -> list[FaceBox]:
    """Faces in ``rgb``, trying harder when the plain detector finds none.

    The detector misses faces that fill the frame (tight crops: tried again with the photo padded
    by edge colour), tiny faces (small images: tried upscaled) and flat, low-contrast scans (tried
    contrast-equalised). Every box is returned in ``rgb``'s own pixels.
    """
    boxes = landmarker.detect(rgb)
    if boxes:
        return boxes
    h, w = rgb.shape[:2]
    pad_x, pad_y = round(DETECT_PAD * w), round(DETECT_PAD * h)
    padded = cv2.copyMakeBorder(rgb, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
    boxes = [_shift(b, -pad_x, -pad_y, 1.0) for b in landmarker.detect(padded)]
    if boxes:
        return boxes
    if min(h, w) < SMALL_IMAGE_SIDE:
        factor = SMALL_IMAGE_SIDE * 2 / min(h, w)
        big = cv2.resize(rgb, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_CUBIC)
        boxes = [_shift(b, 0, 0, 1.0 / factor) for b in landmarker.detect(big)]
        if boxes:
            return boxes
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    equalised = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    return landmarker.detect(cv2.cvtColor(equalised, cv2.COLOR_GRAY2RGB))


def _mesh_padded(landmarker: FaceLandmarker, rgb: np.ndarray, box: FaceBox) -> np.ndarray | None:
    h, w = rgb.shape[:2]
    pad_x, pad_y = round(DETECT_PAD * w), round(DETECT_PAD * h)
    padded = cv2.copyMakeBorder(rgb, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
    lms = landmarker.mesh(padded, _shift(box, pad_x, pad_y, 1.0))
    if lms is not None:
        lms = lms.copy()
        lms[:, 0] -= pad_x
        lms[:, 1] -= pad_y
    return lms


def _shift(box: FaceBox, dx: float, dy: float, scale: float) -> FaceBox:
    return FaceBox(
        (box.x0 + dx) * scale, (box.y0 + dy) * scale, (box.x1 + dx) * scale, (box.y1 + dy) * scale, box.score
    )


def pick_face(boxes: list[FaceBox], width: int, height: int) -> FaceBox:
    """The face a portrait is *of*: large and central. Score = area × (1 - distance of its centre
    from the image centre, in half-diagonals, halved), so a big face wins unless it sits at the
    edge next to one nearly as big in the middle."""
    half_diag = 0.5 * float(np.hypot(width, height))

    def weight(b: FaceBox) -> float:
        d = float(np.hypot((b.x0 + b.x1 - width) / 2.0, (b.y0 + b.y1 - height) / 2.0)) / half_diag
        return b.area * (1.0 - 0.5 * min(d, 1.0))

    return max(boxes, key=weight)


def _soften_padding(out: np.ndarray, x0: int, y0: int, side: int, w: int, h: int) -> np.ndarray:
    """Where the square leaves the photo, edge replication paints streaks; fade them into a
    heavy blur with distance from the photo's edge (mirroring could duplicate the face)."""
    scale = out.shape[0] / side
    inside = np.zeros(out.shape[:2], np.uint8)
    cv2.rectangle(
        inside,
        (round(-x0 * scale), round(-y0 * scale)),
        (round((w - x0) * scale) - 1, round((h - y0) * scale) - 1),
        255,
        -1,
    )
    distance = cv2.distanceTransform(255 - inside, cv2.DIST_L2, 3)
    weight = np.clip(distance / (0.04 * out.shape[0]), 0.0, 1.0)[:, :, None]
    blurred = cv2.GaussianBlur(out, (0, 0), 0.08 * out.shape[0])
    return (out * (1.0 - weight) + blurred * weight + 0.5).astype(np.uint8)


def _fit_whole(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    h, w = rgb.shape[:2]
    scale = min(1.0, OUTPUT_SIDE / max(h, w))
    out_w = max(2, int(w * scale) // 2 * 2)
    out_h = max(2, int(h * scale) // 2 * 2)
    if (out_w, out_h) == (w, h):
        return rgb.copy(), (0, 0, w, h)
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    # crop_box keeps the exact source extent; the <1 px aspect change from even rounding is absorbed
    return cv2.resize(rgb, (out_w, out_h), interpolation=interp), (0, 0, w, h)


def _map_landmarks(lms: np.ndarray, crop_box: tuple[int, int, int, int], scale: float) -> np.ndarray:
    out = lms.astype(np.float64).copy()
    out[:, 0] = (out[:, 0] - crop_box[0]) * scale
    out[:, 1] = (out[:, 1] - crop_box[1]) * scale
    out[:, 2] *= scale
    return out.astype(np.float32)


def _landmark_box(lms: np.ndarray) -> FaceBox:
    x0, y0 = lms[:, :2].min(axis=0)
    x1, y1 = lms[:, :2].max(axis=0)
    return FaceBox(float(x0), float(y0), float(x1), float(y1), 1.0)


def _scaled_box(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    """A pixel box of the decoded image in the uploaded image's own pixels."""
    x, y, w, h = (round(v * scale) for v in box)
    return x, y, w, h
