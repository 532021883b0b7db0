"""Per-avatar rasterisation of the warp mesh, and the per-frame backward map.

Precomputed once: on a half-resolution grid over the moving region (the ROI inside the fixed
ring), the triangle covering each grid point and its barycentric weights, as a sparse matrix.
Per frame: vertex displacements → forward positions of the grid (a sparse product per axis), splatted
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
_MAX_SPLAT_LOG2_RATIO = 36.5 / 24.0  # triangles squeezed or stretched past ~2.87x in area (a
# closing lid, the closed mouth's slit) do not splat; their neighbours' maps extend over them instead


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
        self._covered_code = (self.covered_tri + 1).astype(np.intp)
        self._tri_ref = _ReferenceTriangles.of(self.points, self.triangles)
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
        self._covered_rel = np.ascontiguousarray(rel.T, dtype=np.float32)  # (2, covered): x row, y row

    def _forward_cells(self, vertex_disp: np.ndarray, rel: np.ndarray) -> np.ndarray:
        """Grid cell (one axis) that each covered reference grid point moves to."""
        moved = self.weights @ vertex_disp.astype(np.float32)
        moved += rel
        np.rint(moved, out=moved)
        return moved.astype(np.int32)

    def backward_map(self, vertex_disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Absolute source coordinates (map_x, map_y) for every ROI pixel of the output (float32
        views with unit column stride, which cv2.remap takes without copying).

        Exact piecewise-affine inverse of the deformed mesh: each output grid point finds the
        deformed triangle covering it by splatting the reference grid forward (collisions are
        harmless; holes where the mesh stretches take the nearest splatted triangle, whose affine
        map continues smoothly), then maps back through that triangle's affine transform.
        Few, large array operations on purpose: each releases the GIL while it runs, so several
        sessions' renders overlap on several cores.
        """
        affine, splat_ok = _inverse_affines(self._tri_ref, self.points + vertex_disp)
        gw, gh = self.grid_w, self.grid_h
        n_cells = gh * gw
        cx, cy = (self._forward_cells(vertex_disp[:, k], self._covered_rel[k]) for k in (0, 1))
        flat = cy * gw
        flat += cx
        if cx.min() < 0 or cy.min() < 0 or cx.max() >= gw or cy.max() >= gh:
            # never for a sane rig (the fixed ring bounds the mesh), but stay safe
            flat[(cx < 0) | (cx >= gw) | (cy < 0) | (cy >= gh)] = n_cells
        if not splat_ok.all():  # squeezed/stretched triangles do not splat
            flat[~np.take(splat_ok, self.covered_tri)] = n_cells
        ids = np.zeros(n_cells + 1, dtype=np.intp)  # triangle id + 1, 0 = unknown; last = discard
        ids[flat] = self._covered_code
        tri = _fill_holes(ids[:n_cells].reshape(gh, gw)).ravel()
        a = np.take(affine, tri, axis=0)  # (cells, 6); unknown cells (id 0) take the identity
        px, py = self._grid_x, self._grid_y
        hx = a[:, 0] * px
        hx += a[:, 1] * py
        hx += a[:, 4]
        hy = a[:, 2] * px
        hy += a[:, 3] * py
        hy += a[:, 5]
        size = (gw * GRID_STEP, gh * GRID_STEP)
        rows = slice(GRID_STEP, GRID_STEP + self.roi.height)
        cols = slice(GRID_STEP, GRID_STEP + self.roi.width)
        map_x = cv2.resize(hx.reshape(gh, gw), size, interpolation=cv2.INTER_LINEAR)[rows, cols]
        map_y = cv2.resize(hy.reshape(gh, gw), size, interpolation=cv2.INTER_LINEAR)[rows, cols]
        return map_x, map_y


def _fill_holes(ids: np.ndarray) -> np.ndarray:
    """Give every unknown cell (0) the id of its nearest known cell (whose triangle's affine map
    extends continuously over the hole).

    This also covers an opening mouth: each half of the gap (no reference pixels) continues the
    lip it touches, which the mouth interior then paints over; nearest (not, say, max-id) matters
    at the lip edge, where a far triangle's extrapolation would show as a ragged seam.
    """
    holes = (ids == 0).view(np.uint8)
    if not holes.any():
        return ids
    _, labels = cv2.distanceTransformWithLabels(holes, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    # OpenCV numbers the known cells 1..n in raster order, so their values in that order are the LUT
    known = ids[holes == 0]
    lut = np.empty(len(known) + 1, dtype=ids.dtype)
    lut[0] = 0
    lut[1:] = known
    return np.take(lut, labels)


@dataclass(frozen=True, slots=True)
class _ReferenceTriangles:
    """Per-triangle reference geometry, fixed per avatar, as flat (T,) component arrays: a
    triangle is a few hundred to a few thousand elements, where per-component arithmetic beats
    batched 2x2 matrix products by far."""

    corners: tuple[np.ndarray, np.ndarray, np.ndarray]  # vertex ids of corners 0, 1, 2
    ax: np.ndarray  # corner 0
    ay: np.ndarray
    e1x: np.ndarray  # edge corner 0 → 1
    e1y: np.ndarray
    e2x: np.ndarray  # edge corner 0 → 2
    e2y: np.ndarray
    area: np.ndarray  # |det [e1 e2]|, at least 1e-6

    @classmethod
    def of(cls, points: np.ndarray, tris: np.ndarray) -> _ReferenceTriangles:
        ids = tuple(np.ascontiguousarray(tris[:, k], dtype=np.intp) for k in range(3))
        x, y = (np.ascontiguousarray(points[:, k]) for k in (0, 1))
        ax, ay = x[ids[0]], y[ids[0]]
        e1x, e1y, e2x, e2y = x[ids[1]] - ax, y[ids[1]] - ay, x[ids[2]] - ax, y[ids[2]] - ay
        area = np.maximum(np.abs(e1x * e2y - e2x * e1y), 1e-6)
        return cls(ids, ax, ay, e1x, e1y, e2x, e2y, area)  # type: ignore[arg-type]


def _inverse_affines(ref: _ReferenceTriangles, deformed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle, the affine map deformed → reference as a (T + 1, 6) float32 table (columns:
    the linear part a00 a01 a10 a11, then the offset x y; row 0 is the identity, row t + 1 is
    triangle t), and whether each triangle may splat: badly squeezed or stretched ones (area
    ratio past ~2.87x: a closing lid, the stretched mouth slit) may not, since extrapolating a
    steep inverse fetches far pixels."""
    x, y = np.ascontiguousarray(deformed[:, 0]), np.ascontiguousarray(deformed[:, 1])
    i0, i1, i2 = ref.corners
    dx, dy = x[i0], y[i0]
    f1x, f1y, f2x, f2y = x[i1] - dx, y[i1] - dy, x[i2] - dx, y[i2] - dy
    det = f1x * f2y - f2x * f1y
    degenerate = np.abs(det) < 1e-6
    inv_det = 1.0 / np.where(degenerate, 1.0, det)
    # inverse of the deformed edge matrix [[f1x, f2x], [f1y, f2y]], times the reference one
    i00, i01, i10, i11 = f2y * inv_det, -f2x * inv_det, -f1y * inv_det, f1x * inv_det
    table = np.empty((len(det) + 1, 6), dtype=np.float32)
    table[0] = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    lin = (
        ref.e1x * i00 + ref.e2x * i10,
        ref.e1x * i01 + ref.e2x * i11,
        ref.e1y * i00 + ref.e2y * i10,
        ref.e1y * i01 + ref.e2y * i11,
    )
    for k, part in enumerate(lin):
        part[degenerate] = 1.0 if k in (0, 3) else 0.0  # a collapsed triangle covers no area
        table[1:, k] = part
    table[1:, 4] = ref.ax - (lin[0] * dx + lin[1] * dy)
    table[1:, 5] = ref.ay - (lin[2] * dx + lin[3] * dy)
    ratio = np.abs(det) / ref.area
    splat_ok = np.abs(np.log2(np.clip(ratio, 1e-6, 1e6))) < _MAX_SPLAT_LOG2_RATIO
    return table, splat_ok


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
        cv2.fillConvexPoly(ids, poly, (int(t),), lineType=cv2.LINE_8, shift=_SHIFT)
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
