"""The CPU face renderer: one avatar image + landmarks → a frame per MotionFrame.

Per avatar (``FaceRenderer(...)``, ~0.1 s): warp mesh, rig gains, the reference rasterisation and
the mouth/eye styles. Per frame: rig → vertex displacements, exact piecewise-affine backward map
of the moving ROI, one cv2.remap, then the synthesized mouth interior and lash line on top.
The renderer is immutable after construction, so one instance can serve several threads.
"""

from __future__ import annotations

import time

import numpy as np

from models.render.eyes import LidOverlay
from models.render.field import WarpField
from models.render.mesh import build_mesh, face_frame
from models.render.mouth import MouthInterior
from models.render.rig import FaceRig, bounded
from models.render.warp import warp_image
from models.types import MotionFrame


class FaceRenderer:
    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        self.image = np.ascontiguousarray(image)
        self.image.setflags(write=False)
        height, width = image.shape[:2]
        frame = face_frame(landmarks)
        self.mesh = build_mesh(landmarks, width, height)
        self.rig = FaceRig(self.mesh, frame)
        self.field = WarpField(self.mesh, width, height)
        self.mouth = MouthInterior(self.image, self.mesh.points, frame)
        self.lids = LidOverlay(self.image, self.mesh.points, frame)
        self.image = self.mouth.sealed(self.image)  # an open-mouthed photo: what the warp closes at rest
        self.image.setflags(write=False)
        rest = self.mesh.points[:, :2] + self.rig.displacements(MotionFrame(0))
        self.mouth.rest_gap = max(0.0, self.mouth.opening(rest))

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])

    def render(self, motion: MotionFrame, disp: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame for ``motion``; deterministic. ``disp``: the rig's
        ``displacements(motion)`` when the caller already has them."""
        return self.render_timed(motion, disp)[0]

    def render_timed(
        self, motion: MotionFrame, disp: np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[str, float]]:
        """The frame plus where its time went (CPU ms of the calling thread, so the split holds on
        a loaded machine; with OpenCV's own thread pool on, work it farms out is not counted):
        rig, field (backward map), remap, overlays."""
        t0 = time.thread_time()
        if disp is None:
            disp = self.rig.displacements(motion)
        t1 = time.thread_time()
        map_x, map_y = self.field.backward_map(disp)
        t2 = time.thread_time()
        out = warp_image(self.image, self.field, map_x, map_y)
        t3 = time.thread_time()
        deformed = self.mesh.points[:, :2] + disp
        self.mouth.paint(out, deformed)
        t4 = time.thread_time()
        self.lids.paint(
            out, deformed, bounded(motion.blink_right, 0.0, 1.0), bounded(motion.blink_left, 0.0, 1.0)
        )
        t5 = time.thread_time()
        return out, {
            "rig": (t1 - t0) * 1e3,
            "field": (t2 - t1) * 1e3,
            "remap": (t3 - t2) * 1e3,
            "mouth": (t4 - t3) * 1e3,
            "lids": (t5 - t4) * 1e3,
        }
