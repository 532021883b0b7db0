"""MotionFrame → per-vertex displacement of the warp mesh (the face "rig").

Everything that depends only on the avatar (which vertices belong to the jaw, how far each lid
may travel, how far the iris may move) is precomputed as per-vertex gains, so a frame is a few
vectorised multiply-adds plus one 3D rotation. Amplitudes are in units of the inter-ocular
distance (``iod``), so any face size and framing animates alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.face import topology as topo
from models.render.mesh import FaceFrame, WarpMesh
from models.render.rig_mouth import mouth_gains
from models.types import MotionFrame

SPREAD_GAIN = 0.12  # mouth_width = +1 widens the lips by 12 %
ROUND_GAIN = 0.22  # mouth_width = -1 narrows them by 22 %
LID_MEET = 0.85  # closed lids meet this far from the upper towards the lower lid
GAZE_TRAVEL_EYE_WIDTHS = 0.16
HEAD_RING_WEIGHT = 0.8  # how much of the head rotation the hair/ear ring follows
NECK_RING_WEIGHT = 0.35  # ... and the part of that ring below the mouth (the neck)
MAX_ROTATION_DEG = 30.0
"""Head rotations are clamped here: beyond it a single-photo warp cannot stay plausible."""
DEPTH_SCALE = 0.55
"""Head rotations use the mesh depth flattened by this factor: a 2D warp cannot show the nose
occluding the far cheek, and full relief would fold the mesh over itself (a visible seam)."""


@dataclass(frozen=True, slots=True)
class EyeRig:
    upper: np.ndarray  # landmark ids of the upper lid (corner → corner)
    lower: np.ndarray
    blink_gain: np.ndarray  # (V,) local-y displacement at blink = 1


class FaceRig:
    """Static per-vertex gains for one avatar; ``displacements`` is pure and thread-safe."""

    def __init__(self, mesh: WarpMesh, frame: FaceFrame) -> None:
        self.mesh = mesh
        self.frame = frame
        iod = frame.iod
        pts3 = mesh.points
        local = frame.to_local(pts3)
        self.local = local
        y = local[:, 1]
        n_vertices = len(pts3)
        static = np.zeros(n_vertices, dtype=bool)
        static[np.concatenate([mesh.ring_fixed, mesh.border, mesh.iris_vertices])] = True
        y_corner = float(local[list(topo.MOUTH_CORNERS), 1].mean())
        below = y > y_corner
        self.mouth = mouth_gains(local, iod, static)
        # the head ring follows the jaw half-way below the mouth (the neck stretches), else not
        ring = mesh.ring_head
        self.mouth.jaw[ring] = np.where(below[ring], 0.5 * self.mouth.jaw[ring], 0.0)

        self.eyes = [
            self._eye(local, topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER, n_vertices),
            self._eye(local, topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER, n_vertices),
        ]
        for ids in (mesh.ring_head, mesh.ring_fixed, mesh.border):
            for eye in self.eyes:
                eye.blink_gain[ids] = 0.0

        self.gaze_mask = np.zeros(n_vertices)
        self.gaze_mask[mesh.iris_vertices] = 1.0
        self.gaze_travel = self._gaze_travel(local)

        weights = np.ones(n_vertices)
        weights[mesh.ring_head] = np.where(below[mesh.ring_head], NECK_RING_WEIGHT, HEAD_RING_WEIGHT)
        weights[mesh.ring_fixed] = 0.0
        weights[mesh.border] = 0.0
        self.rotation_weight = weights
        oval = np.array(topo.FACE_OVAL)
        self.head_centre = np.array(
            [
                0.0,
                0.5 * (local[topo.NOSE_TIP, 1] + y_corner),
                (float(pts3[oval, 2].mean()) + 0.35 * iod) * DEPTH_SCALE,
            ]
        )
        self.z = pts3[:, 2] * DEPTH_SCALE

    @staticmethod
    def _eye(local: np.ndarray, upper_ids: tuple[int, ...], lower_ids: tuple[int, ...], n: int) -> EyeRig:
        upper = local[list(upper_ids)]
        lower = local[list(lower_ids)]
        eye_width = float(np.ptp(upper[:, 0]))
        xs = np.linspace(upper[:, 0].min(), upper[:, 0].max(), 32)
        y_up = _interp_curve(upper, xs)
        y_low = _interp_curve(lower, xs)
        opening = np.maximum(y_low - y_up, 0.0)
        meet = y_up + LID_MEET * opening
        d_up = meet - y_up  # >= 0
        d_low = meet - (y_up + opening)  # <= 0
        x, y = local[:, 0], local[:, 1]
        yu = np.interp(x, xs, y_up, left=np.nan, right=np.nan)
        yl = np.interp(x, xs, y_low, left=np.nan, right=np.nan)
        du = np.interp(x, xs, d_up, left=0.0, right=0.0)
        dl = np.interp(x, xs, d_low, left=0.0, right=0.0)
        in_range = ~np.isnan(yu)
        yu, yl = np.nan_to_num(yu), np.nan_to_num(yl)
        skin_above = max(0.35 * eye_width, 1.5 * float(opening.max()))
        skin_below = 0.3 * eye_width
        gain = np.zeros(n)
        above = in_range & (y <= yu)
        gain[above] = du[above] * np.clip(1.0 - (yu[above] - y[above]) / skin_above, 0.0, 1.0)
        below = in_range & (y >= yl)
        gain[below] = dl[below] * np.clip(1.0 - (y[below] - yl[below]) / skin_below, 0.0, 1.0)
        inside = in_range & (y > yu) & (y < yl)
        t = (y[inside] - yu[inside]) / np.maximum(yl[inside] - yu[inside], 1e-6)
        gain[inside] = (1.0 - t) * du[inside] + t * dl[inside]
        gain[list(upper_ids)] = np.interp(x[list(upper_ids)], xs, d_up)
        gain[list(lower_ids)] = np.interp(x[list(lower_ids)], xs, d_low)
        return EyeRig(np.array(upper_ids), np.array(lower_ids), gain)

    def _gaze_travel(self, local: np.ndarray) -> np.ndarray:
        """Largest iris shift (x, y) that keeps both irises inside their eye openings."""
        travel = np.array([np.inf, np.inf])
        for iris, upper in (
            (topo.RIGHT_IRIS, topo.RIGHT_EYE_UPPER),
            (topo.LEFT_IRIS, topo.LEFT_EYE_UPPER),
        ):
            if iris[0] not in self.mesh.iris_vertices:
                continue
            c = local[iris[0]]
            radius = float(np.linalg.norm(local[list(iris[1:])] - c, axis=1).mean())
            corners = local[[upper[0], upper[-1]], 0]
            width = float(abs(corners[1] - corners[0]))
            room = float(min(abs(c[0] - corners[0]), abs(c[0] - corners[1]))) - 0.9 * radius
            travel[0] = min(travel[0], max(0.0, min(GAZE_TRAVEL_EYE_WIDTHS * width, room)))
            travel[1] = min(travel[1], 0.25 * radius)
        return np.where(np.isfinite(travel), travel, 0.0)

    def displacements(self, m: MotionFrame) -> np.ndarray:
        """(V, 2) image-space displacement of every mesh vertex for motion ``m`` (forward warp)."""
        mouth = self.mouth
        press = bounded(m.lip_press, 0.0, 1.0)
        jaw = bounded(m.jaw_open, 0.0, 1.2) * (1.0 - 0.8 * press)
        width = bounded(m.mouth_width, -1.0, 1.0)
        drop = jaw * mouth.drop_px - mouth.source_gap_px  # an open-mouthed photo closes at rest
        dx = width * (SPREAD_GAIN if width > 0 else ROUND_GAIN) * mouth.width
        dy = drop * mouth.jaw + press * mouth.press
        dy = dy + max(drop, 0.0) * mouth.upper_raise + max(-width, 0.0) * mouth.pout
        for eye, blink in zip(self.eyes, (m.blink_right, m.blink_left), strict=True):
            closure = bounded(blink, 0.0, 1.0)
            if closure > 0.0:
                dy = dy + closure * eye.blink_gain
        dx = dx + bounded(m.gaze_x, -1.0, 1.0) * self.gaze_travel[0] * self.gaze_mask
        dy = dy + bounded(m.gaze_y, -1.0, 1.0) * self.gaze_travel[1] * self.gaze_mask
        local = np.stack([dx, dy], axis=1)
        pitch, yaw, roll = (bounded(v, -MAX_ROTATION_DEG, MAX_ROTATION_DEG) for v in (m.pitch, m.yaw, m.roll))
        angles = (pitch, yaw, roll)
        if any(angles):
            local = local + self._rotation(local, angles)
        return self.frame.to_image_vec(local)

    def _rotation(self, local_disp: np.ndarray, angles: tuple[float, float, float]) -> np.ndarray:
        p = np.column_stack([self.local + local_disp, self.z]) - self.head_centre
        rot = rotation_matrix(*angles)
        moved = p @ rot.T
        return (moved[:, :2] - p[:, :2]) * self.rotation_weight[:, None]


def bounded(value: float, lo: float, hi: float) -> float:
    """Clip a motion value; NaN (never valid motion) counts as the neutral 0."""
    v = float(value)
    return 0.0 if v != v else min(max(v, lo), hi)


def rotation_matrix(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation in face-local coords (x right, y down, z away from the camera).

    + yaw turns the nose towards +x, + pitch moves the nose down (chin down), + roll is clockwise
    on screen.
    """
    p, y, r = np.radians([pitch_deg, yaw_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _interp_curve(curve: np.ndarray, xs: np.ndarray) -> np.ndarray:
    order = np.argsort(curve[:, 0])
    return np.interp(xs, curve[order, 0], curve[order, 1])
