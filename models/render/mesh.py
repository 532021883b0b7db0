"""The warp mesh of one avatar: the 478 face landmarks plus anchor rings and image-border points.

Triangles are MediaPipe's face tessellation, strips filling the mouth and lid openings (so an
opening mouth / closing lid is a deformation of existing triangles), Delaunay fills of the eyes
around the iris vertices, and a Delaunay fill of everything outside the face oval. The outer
ring (``RING_FIXED``) and the border never move, so hair, neck and background stay put.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from models.face import topology as topo

RING_HEAD = 1.28
"""Scale of the face oval (about its centre) for the ring that moves with the head (hair, ears)."""
RING_FIXED = 1.8
"""Scale of the ring that stays fixed; the band between the rings absorbs head motion."""
BORDER_STEP = 96


@dataclass(frozen=True, slots=True)
class FaceFrame:
    """Face-aligned 2D frame: origin between the eye centres, x towards the subject's left eye."""

    origin: np.ndarray  # (2,)
    ex: np.ndarray  # (2,) unit, image coords
    ey: np.ndarray  # (2,) unit, perpendicular (down the face)
    iod: float  # inter-ocular distance in pixels (the unit of every motion amplitude)

    def to_local(self, pts: np.ndarray) -> np.ndarray:
        rel = pts[:, :2] - self.origin
        return np.stack([rel @ self.ex, rel @ self.ey], axis=1)

    def to_image_vec(self, local: np.ndarray) -> np.ndarray:
        return local[:, :1] * self.ex + local[:, 1:2] * self.ey


def face_frame(lms: np.ndarray) -> FaceFrame:
    right = lms[list(topo.RIGHT_EYE_CONTOUR), :2].mean(axis=0)
    left = lms[list(topo.LEFT_EYE_CONTOUR), :2].mean(axis=0)
    axis = left - right
    iod = float(np.linalg.norm(axis))
    ex = axis / max(iod, 1e-6)
    ey = np.array([-ex[1], ex[0]])
    return FaceFrame(origin=(left + right) / 2.0, ex=ex, ey=ey, iod=max(iod, 1.0))


@dataclass(frozen=True, slots=True)
class WarpMesh:
    points: np.ndarray  # (V, 3) float64 image x, y and z (pixel units, - = towards camera)
    triangles: np.ndarray  # (T, 3) int32
    ring_head: np.ndarray  # vertex ids of the head-following ring
    ring_fixed: np.ndarray  # vertex ids of the fixed ring
    border: np.ndarray  # vertex ids of image-border anchors
    iris_vertices: np.ndarray  # landmark ids of iris vertices that are inside an eye opening
    mouth_triangles: np.ndarray  # triangle ids of the strip between the inner lips


def build_mesh(lms: np.ndarray, width: int, height: int) -> WarpMesh:
    lms = lms.astype(np.float64)
    oval = lms[list(topo.FACE_OVAL)]
    centre = oval[:, :2].mean(axis=0)
    iod = face_frame(lms).iod
    ring_head = _ring(oval, centre, RING_HEAD, z_offset=0.25 * iod)
    ring_fixed = _ring(oval, centre, RING_FIXED, z_offset=0.5 * iod)
    border = _border_points(width, height, ring_fixed[:, :2])
    points = np.concatenate([lms, ring_head, ring_fixed, border], axis=0)
    n = len(lms)
    ids_head = np.arange(n, n + len(ring_head))
    ids_fixed = np.arange(ids_head[-1] + 1, ids_head[-1] + 1 + len(ring_fixed))
    ids_border = np.arange(ids_fixed[-1] + 1, len(points))

    iris = [i for iris_ids in (topo.RIGHT_IRIS, topo.LEFT_IRIS) for i in _usable_iris(lms, iris_ids)]
    triangles = [topo.face_triangles()]
    mouth_strip = _strip(topo.UPPER_LIP_INNER, topo.LOWER_LIP_INNER)
    mouth_ids = np.arange(len(triangles[0]), len(triangles[0]) + len(mouth_strip))
    triangles.append(mouth_strip)
    for upper, lower, iris_ids in (
        (topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER, topo.RIGHT_IRIS),
        (topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER, topo.LEFT_IRIS),
    ):
        inner = [i for i in iris if i in iris_ids]
        triangles.append(_eye_fill(points, upper, lower, inner))
    outer_ids = np.concatenate([np.array(topo.FACE_OVAL), ids_head, ids_fixed, ids_border])
    triangles.append(_outer_fill(points, outer_ids, oval[:, :2]))
    return WarpMesh(
        points=points,
        triangles=np.concatenate(triangles).astype(np.int32),
        ring_head=ids_head,
        ring_fixed=ids_fixed,
        border=ids_border,
        iris_vertices=np.array(iris, dtype=np.int64),
        mouth_triangles=mouth_ids,
    )


def _ring(oval: np.ndarray, centre: np.ndarray, scale: float, z_offset: float) -> np.ndarray:
    ring = oval.copy()
    ring[:, :2] = centre + scale * (oval[:, :2] - centre)
    ring[:, 2] = oval[:, 2] + z_offset
    return ring


def _border_points(width: int, height: int, fixed_ring: np.ndarray) -> np.ndarray:
    """Image-edge anchors outside the fixed ring (ones inside it would pin moving regions)."""
    xs = np.linspace(0, width - 1, max(2, round(width / BORDER_STEP) + 1))
    ys = np.linspace(0, height - 1, max(2, round(height / BORDER_STEP) + 1))
    pts = [(x, 0.0) for x in xs] + [(x, height - 1.0) for x in xs]
    pts += [(0.0, y) for y in ys[1:-1]] + [(width - 1.0, y) for y in ys[1:-1]]
    contour = fixed_ring.astype(np.float32).reshape(-1, 1, 2)
    keep = [p for p in pts if cv2.pointPolygonTest(contour, (float(p[0]), float(p[1])), True) < -2.0]
    return np.array([(x, y, 0.0) for x, y in keep], dtype=np.float64).reshape(-1, 3)


def _usable_iris(lms: np.ndarray, iris_ids: tuple[int, ...]) -> list[int]:
    """The iris centre and its two horizontal ring points, where they lie inside the eye opening
    (the top/bottom ring points are usually under the lids and must not drag lid skin)."""
    upper, lower = (
        (topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER)
        if iris_ids == topo.RIGHT_IRIS
        else (topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER)
    )
    contour = lms[list(topo.eye_contour(upper, lower)), :2].astype(np.float32).reshape(-1, 1, 2)
    centre = lms[iris_ids[0], :2]
    ring = list(iris_ids[1:])
    offsets = np.abs(lms[ring, 1] - centre[1])
    horizontal = [ring[i] for i in np.argsort(offsets)[:2]]
    inside = []
    for i in [iris_ids[0], *horizontal]:
        if cv2.pointPolygonTest(contour, (float(lms[i, 0]), float(lms[i, 1])), True) > 0.5:
            inside.append(i)
    return inside if iris_ids[0] in inside else []


def _strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """Triangles between two polylines sharing their end points (valid even when they touch)."""
    tris = []
    for i in range(len(upper) - 1):
        u0, u1, l0, l1 = upper[i], upper[i + 1], lower[i], lower[i + 1]
        if u1 != l1:
            tris.append((u0, u1, l1))
        if u0 != l0:
            tris.append((u0, l1, l0))
    return np.array(tris, dtype=np.int32)


def _eye_fill(
    points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...], iris: list[int]
) -> np.ndarray:
    if not iris:
        return _strip(upper, lower)
    contour_ids = list(topo.eye_contour(upper, lower))
    ids = np.array(contour_ids + iris)
    tri = Delaunay(points[ids, :2]).simplices
    polygon = points[contour_ids, :2].astype(np.float32).reshape(-1, 1, 2)
    keep = [
        t
        for t in tri
        if cv2.pointPolygonTest(polygon, tuple(map(float, points[ids[t], :2].mean(0))), False) > 0
    ]
    return ids[np.array(keep, dtype=np.int64)].astype(np.int32) if keep else _strip(upper, lower)


def _outer_fill(points: np.ndarray, ids: np.ndarray, oval: np.ndarray) -> np.ndarray:
    tri = Delaunay(points[ids, :2]).simplices
    polygon = oval.astype(np.float32).reshape(-1, 1, 2)
    keep = [
        t
        for t in tri
        if cv2.pointPolygonTest(polygon, tuple(map(float, points[ids[t], :2].mean(0))), False) < 0
    ]
    return ids[np.array(keep, dtype=np.int64)].astype(np.int32)
