"""MediaPipe face detection + 478-point face mesh, safe to call from many threads.

MediaPipe graph objects keep per-call state and are not thread-safe, so every call borrows an
instance from a small pool (created on demand, returned after use): concurrent sessions run in
parallel instead of queueing on one lock, and the pool never exceeds the peak concurrency.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from models.face.topology import NUM_LANDMARKS

DETECTION_MAX_SIDE = 1024
"""Images are downscaled to this long side before face detection (the detector runs at 192²)."""

MESH_INPUT_SIDE = 384
"""The square face region given to the mesh model (it works at 192² internally)."""


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A detected face in source-image pixels."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


class _Pool:
    """Borrow/return pool of expensive, non-thread-safe objects."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.created = 0
        self._lock = threading.Lock()

    def acquire(self) -> Any:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                self.created += 1
            return self._factory()

    def release(self, obj: Any) -> None:
        self._free.put(obj)


def _mediapipe() -> Any:
    """mediapipe is installed apart from the wheel's dependencies (docs/DEPENDENCIES.md): say how."""
    try:
        import mediapipe as mp
    except ModuleNotFoundError as e:
        from models.errors import EngineUnavailableError

        raise EngineUnavailableError(
            f"face landmarks need mediapipe ({e}); install it with: pip install --no-deps mediapipe==0.10.21"
        ) from e
    return mp


def _make_detector() -> Any:
    mp = _mediapipe()
    return mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)


def _make_mesh() -> Any:
    mp = _mediapipe()
    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
    )


class FaceLandmarker:
    """Finds faces and their 478 mesh landmarks (x, y in pixels, z in pixel units, - = towards camera)."""

    def __init__(self) -> None:
        self._detectors = _Pool(_make_detector)
        self._meshes = _Pool(_make_mesh)

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """All faces, largest first, in ``rgb`` pixel coordinates (detected on a downscaled copy)."""
        h, w = rgb.shape[:2]
        scale = min(1.0, DETECTION_MAX_SIDE / max(h, w))
        small = (
            rgb
            if scale == 1.0
            else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        )
        detector = self._detectors.acquire()
        try:
            result = detector.process(np.ascontiguousarray(small))
        finally:
            self._detectors.release(detector)
        boxes = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            x0, y0 = rb.xmin * w, rb.ymin * h
            boxes.append(FaceBox(x0, y0, x0 + rb.width * w, y0 + rb.height * h, float(det.score[0])))
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def mesh(self, rgb: np.ndarray, box: FaceBox | None = None) -> np.ndarray | None:
        """478 landmarks of the face in ``box`` (or of the image's most prominent face), or None.

        The mesh model wants a face-centred square; a square twice the box (edge-padded where it
        leaves the image) is cut out, so results do not depend on how the face sits in the frame.
        """
        h, w = rgb.shape[:2]
        if box is None:
            side = float(max(h, w))
            cx, cy = w / 2.0, h / 2.0
        else:
            side = 2.0 * max(box.width, box.height)
            cx, cy = (box.x0 + box.x1) / 2.0, (box.y0 + box.y1) / 2.0
        x0, y0 = cx - side / 2.0, cy - side / 2.0
        region = square_region(rgb, x0, y0, side, MESH_INPUT_SIDE)
        mesh = self._meshes.acquire()
        try:
            result = mesh.process(region)
        finally:
            self._meshes.release(mesh)
        if not result.multi_face_landmarks:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
        if pts.shape[0] != NUM_LANDMARKS:
            return None
        pts *= side
        pts[:, 0] += x0
        pts[:, 1] += y0
        return pts.astype(np.float32)


def square_region(rgb: np.ndarray, x0: float, y0: float, side: float, out_side: int) -> np.ndarray:
    """The square [x0, x0+side)² of ``rgb`` resampled to out_side², edge-padded outside the image."""
    scale = out_side / side
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], dtype=np.float64)
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    if scale < 0.5:  # warpAffine has no area filter: pre-shrink so downscaling does not alias
        shrink = max(1, int(1.0 / scale / 2))
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (max(1, w // shrink), max(1, h // shrink)), interpolation=cv2.INTER_AREA)
        matrix[:, :2] *= shrink
        interp = cv2.INTER_LINEAR
    return cv2.warpAffine(rgb, matrix, (out_side, out_side), flags=interp, borderMode=cv2.BORDER_REPLICATE)
