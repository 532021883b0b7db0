"""Per-avatar rasterisation of the warp mesh, and the per-frame backward map.

Precomputed once: on a half-resolution grid over the moving region (the ROI inside the fixed
ring), the triangle covering each grid point and its barycentric weights, as a sparse matrix.
Per frame: vertex displacements → forward positions of the grid (one sparse product), splatted
to find which deformed triangle covers each output grid point, mapped back through per-triangle
affine inverses, upsampled ×2, then one cv2.remap of the ROI's pixels. Outside the ROI the
frame is the avatar image untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp

from models.render.mesh import WarpMesh

GRID_STEP = 2
_SHIFT = 4  # sub-pixel bits for cv2.fillConvexPoly
_MIN_SPLAT_PRIORITY = 91.0  # triangles squeezed or stretched past ~2.8x in area (a closing lid, the
# closed mouth's slit) do not splat; their neighbours' maps extend over them instead


@dataclass(frozen=True, slots=True)
class Roi:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


class WarpField:
    """Immutable after construction; ``backward_map`` is pure and thread-safe."""

    def __init__(self, mesh: WarpMesh, width: int, height: int) -> None:
        moving = np.concatenate([np.arange(mesh.ring_fixed[0]), mesh.ring_fixed])
        lo = np.floor(mesh.points[moving, :2].min(axis=0)) - 2
        hi = np.ceil(mesh.points[moving, :2].max(axis=0)) + 2
        x0 = int(max(0, lo[0])) // GRID_STEP * GRID_STEP
        y0 = int(max(0, lo[1])) // GRID_STEP * GRID_STEP
        x1 = min(width, x0 + -(-(int(min(width, hi[0])) - x0) // GRID_STEP) * GRID_STEP)
        y1 = min(height, y0 + -(-(int(min(height, hi[1])) - y0) // GRID_STEP) * GRID_STEP)
        self.roi = Roi(x0, y0, x1, y1)
        # one extra cell on every side, so the ×2 upsampling interpolates (never clamps) at the
        # ROI edge and a still face maps exactly onto itself there
        self.grid_w = -(-self.roi.width // GRID_STEP) + 2
        self.grid_h = -(-self.roi.height // GRID_STEP) + 2
        self.origin = (x0 - GRID_STEP, y0 - GRID_STEP)
        self.points = mesh.points[:, :2].astype(np.float64)
        self.triangles = mesh.triangles
        tri_ids, weights = _rasterize_reference(mesh, self.origin, self.grid_w, self.grid_h)
        self.covered = np.nonzero(tri_ids >= 0)[0]
        self.covered_tri = tri_ids[self.covered]
        self._covered_code = (self.covered_tri + 1).astype(np.float32)
        self.weights = weights[self.covered].astype(np.float32) * (1.0 / GRID_STEP)  # in grid units
        gx, gy = np.meshgrid(np.arange(self.grid_w), np.arange(self.grid_h))
        self.grid_px = np.stack(
            [gx.ravel() * GRID_STEP + self.origin[0] + 0.5, gy.ravel() * GRID_STEP + self.origin[1] + 0.5],
            axis=1,
        )  # pixel coordinates of every grid point
        self._grid_x = self.grid_px[:, 0].astype(np.float32)
        self._grid_y = self.grid_px[:, 1].astype(np.float32)
        # reference grid points in grid units, so forward positions round straight to cells
        rel = (self.grid_px[self.covered] - np.add(self.origin, 0.5)) / GRID_STEP
        self._covered_rel = rel.astype(np.float32)

    def backward_map(self, vertex_disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Absolute source coordinates (map_x, map_y) for every ROI pixel of the output.

        Exact piecewise-affine inverse of the deformed mesh: each output grid point finds the
        deformed triangle covering it by splatting the reference grid forward (collisions are
        harmless; holes where the mesh stretches take the nearest splatted triangle, whose affine
        map continues smoothly), then maps back through that triangle's affine transform.
        """
        disp = vertex_disp.astype(np.float64)
        lin, off, priority = _inverse_affines(self.points, self.points + disp, self.triangles)
        n_tri = len(self.triangles)
        affine = np.empty((n_tri + 1, 6), dtype=np.float32)  # row n_tri: identity for unknown cells
        affine[:n_tri] = np.concatenate([lin.reshape(n_tri, 4), off], axis=1)
        affine[n_tri] = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        forward = self._covered_rel + self.weights @ vertex_disp.astype(np.float32)
        cells = np.rint(forward).astype(np.int32)
        cx, cy = cells[:, 0], cells[:, 1]
        n_cells = self.grid_h * self.grid_w
        ok = (cx >= 0) & (cx < self.grid_w) & (cy >= 0) & (cy < self.grid_h)
        ok &= np.take(priority, self.covered_tri) >= _MIN_SPLAT_PRIORITY  # squeezed/stretched: skip
        ids = np.zeros(n_cells + 1, dtype=np.float32)  # triangle id + 1, 0 = unknown; last = discard
        ids[np.where(ok, cy * self.grid_w + cx, n_cells)] = self._covered_code
        ids = _fill_holes(ids[:n_cells].reshape(self.grid_h, self.grid_w)).ravel()
        tri = ids.astype(np.int32) - 1
        tri[tri < 0] = n_tri
        a = np.take(affine, tri, axis=0)
        px, py = self._grid_x, self._grid_y
        half = np.empty((self.grid_h, self.grid_w, 2), dtype=np.float32)
        half[:, :, 0] = (a[:, 0] * px + a[:, 1] * py + a[:, 4]).reshape(self.grid_h, self.grid_w)
        half[:, :, 1] = (a[:, 2] * px + a[:, 3] * py + a[:, 5]).reshape(self.grid_h, self.grid_w)
        full = cv2.resize(
            half, (self.grid_w * GRID_STEP, self.grid_h * GRID_STEP), interpolation=cv2.INTER_LINEAR
        )
        full = full[GRID_STEP : GRID_STEP + self.roi.height, GRID_STEP : GRID_STEP + self.roi.width]
        return full[:, :, 0], full[:, :, 1]


def _fill_holes(ids: np.ndarray) -> np.ndarray:
    """Give every unknown cell the triangle of its nearest known cell (whose affine map extends
    continuously over the hole).

    This also covers an opening mouth: each half of the gap (no reference pixels) continues the
    lip it touches, which the mouth interior then paints over; nearest (not, say, max-id) matters
    at the lip edge, where a far triangle's extrapolation would show as a ragged seam.
    """
    holes = (ids == 0).astype(np.uint8)
    if not holes.any():
        return ids
    _, labels = cv2.distanceTransformWithLabels(holes, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    # OpenCV numbers the known cells 1..n in raster order, so their values in that order are the LUT
    lut = np.concatenate([np.zeros(1, np.float32), ids[ids != 0]])
    return np.take(lut, labels)


def _inverse_affines(
    ref: np.ndarray, deformed: np.ndarray, tris: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per triangle, the affine map deformed → reference ((T, 2, 2) linear part, (T, 2) offset),
    and a priority (127 = undistorted) that keeps badly distorted triangles from splatting, since
    extrapolating a steep inverse (a squeezed lid, the stretched mouth slit) fetches far pixels."""
    a_ref, a_def = ref[tris[:, 0]], deformed[tris[:, 0]]
    m_ref = np.stack([ref[tris[:, 1]] - a_ref, ref[tris[:, 2]] - a_ref], axis=2)
    m_def = np.stack([deformed[tris[:, 1]] - a_def, deformed[tris[:, 2]] - a_def], axis=2)
    det = m_def[:, 0, 0] * m_def[:, 1, 1] - m_def[:, 0, 1] * m_def[:, 1, 0]
    degenerate = np.abs(det) < 1e-6
    det = np.where(degenerate, 1.0, det)
    inv = np.empty_like(m_def)
    inv[:, 0, 0] = m_def[:, 1, 1] / det
    inv[:, 0, 1] = -m_def[:, 0, 1] / det
    inv[:, 1, 0] = -m_def[:, 1, 0] / det
    inv[:, 1, 1] = m_def[:, 0, 0] / det
    lin = m_ref @ inv
    lin[degenerate] = np.eye(2)  # a collapsed triangle covers no area; any map will do
    off = a_ref - np.einsum("tij,tj->ti", lin, a_def)
    det_ref = m_ref[:, 0, 0] * m_ref[:, 1, 1] - m_ref[:, 0, 1] * m_ref[:, 1, 0]
    ratio = np.abs(det) / np.maximum(np.abs(det_ref), 1e-6)
    priority = np.clip(127.0 - np.rint(np.abs(np.log2(np.clip(ratio, 1e-6, 1e6))) * 24.0), 0.0, 127.0)
    return lin, off, priority


def _rasterize_reference(
    mesh: WarpMesh, origin: tuple[int, int], grid_w: int, grid_h: int
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Triangle id per grid point (-1 = none) and sparse (grid points × vertices) barycentrics.

    Grid point (i, j) sits at pixel (ox + 2i + 0.5, oy + 2j + 0.5), the centre that cv2.resize
    maps it to when the field is upsampled ×2.
    """
    pts = mesh.points[:, :2]
    grid_pts = (pts - np.add(origin, 0.5)) / GRID_STEP
    ids = np.full((grid_h, grid_w), -1, dtype=np.int32)
    scale = 1 << _SHIFT
    for t, tri in enumerate(mesh.triangles):
        poly = np.round(grid_pts[tri] * scale).astype(np.int32)
        cv2.fillConvexPoly(ids, poly, int(t), lineType=cv2.LINE_8, shift=_SHIFT)
    flat = ids.ravel()
    covered = np.nonzero(flat >= 0)[0]
    tris = mesh.triangles[flat[covered]]
    gy, gx = np.divmod(covered, grid_w)
    p = np.stack([gx, gy], axis=1).astype(np.float64)
    a, b, c = grid_pts[tris[:, 0]], grid_pts[tris[:, 1]], grid_pts[tris[:, 2]]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-9
    den = np.where(ok, den, 1.0)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    w1, w2 = np.where(ok, w1, 1 / 3), np.where(ok, w2, 1 / 3)
    bary = np.clip(np.stack([1.0 - w1 - w2, w1, w2], axis=1), 0.0, 1.0)
    bary /= bary.sum(axis=1, keepdims=True)
    rows = np.repeat(covered, 3)
    weights = sp.csr_matrix((bary.ravel(), (rows, tris.ravel())), shape=(grid_w * grid_h, len(pts)))
    return flat, weights
