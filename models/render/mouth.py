"""The mouth interior, synthesized wherever the inner lips open beyond the source photo.

Warping alone would smear the lip line (and any visible teeth) across the opening. Instead the
region between the deformed inner lips is painted: a dark cavity tinted by the subject's lip
colour and shaded deeper at the centre, an upper-teeth band under the upper lip, and the tongue
and lower teeth at wide openings, feathered into the lips. Colours derive from the avatar's own
lips and skin brightness, so dark and light photos both look plausible.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.face import topology as topo
from models.render.mesh import FaceFrame

TEETH_RGB = np.array([222.0, 214.0, 196.0], dtype=np.float32)
INCISOR_EDGES = (0.0, 0.24, 0.46, 0.66)  # teeth boundaries as a fraction of the half mouth width


def _smoothstep(e0: float, e1: float, x: np.ndarray | float) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float32) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _region_mean(image: np.ndarray, outer: np.ndarray, inner: np.ndarray | None = None) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.rint(outer).astype(np.int32)], 255)
    if inner is not None:
        cv2.fillPoly(mask, [np.rint(inner).astype(np.int32)], 0)
    if not mask.any():
        return np.full(3, 128.0, dtype=np.float32)
    return np.asarray(cv2.mean(image, mask=mask)[:3], dtype=np.float32)


class MouthInterior:
    def __init__(self, image: np.ndarray, ref_points: np.ndarray, frame: FaceFrame) -> None:
        self.frame = frame
        self.iod = frame.iod
        ref = ref_points[:, :2]
        outer = ref[list(topo.UPPER_LIP_OUTER) + list(reversed(topo.LOWER_LIP_OUTER[1:-1]))]
        lip = _region_mean(image, outer, ref[list(topo.INNER_MOUTH_CONTOUR)])
        skin = _region_mean(image, ref[list(topo.FACE_OVAL)])
        brightness = float(np.clip((0.299 * skin[0] + 0.587 * skin[1] + 0.114 * skin[2]) / 150.0, 0.5, 1.05))
        self.cavity_rgb = lip * 0.22 + np.array([6.0, 2.0, 3.0], np.float32)
        self.tongue_rgb = lip * 0.62 + np.array([22.0, 4.0, 8.0], np.float32) * brightness
        self.teeth_rgb = (0.85 * TEETH_RGB + 0.15 * skin) * brightness
        self.feather = max(0.6, 0.008 * self.iod)
        # columns: the colours that cv2.transform mixes per pixel by the (cavity, tongue, teeth) weights
        colours = [self.cavity_rgb, self.tongue_rgb, self.teeth_rgb]
        self._colours = np.stack(colours, axis=1).astype(np.float32)

    def opening(self, deformed: np.ndarray) -> float:
        """Inner-lip gap at the mouth centre in pixels (along the face's vertical axis)."""
        upper, lower = deformed[topo.INNER_LIP_MID[0]], deformed[topo.INNER_LIP_MID[1]]
        return float((lower - upper) @ self.frame.ey)

    def paint(self, out: np.ndarray, deformed: np.ndarray) -> None:
        """Paint the interior into ``out`` (in place) for the deformed vertex positions."""
        gap_c = self.opening(deformed)
        # the rig closes an open-mouthed photo at rest, so any visible gap is painted, whatever the source
        strength = float(_smoothstep(0.01 * self.iod, 0.05 * self.iod, gap_c))
        if strength <= 0.0:
            return
        # the opening reaches the commissures (outer corners): the corner skin between inner and
        # outer corner stretches when the jaw drops and must read as mouth, not as pale skin
        inner = list(topo.MOUTH_CORNERS[:1]) + list(topo.UPPER_LIP_INNER[1:-1]) + list(topo.MOUTH_CORNERS[1:])
        upper = deformed[inner]
        lower = deformed[
            list(topo.MOUTH_CORNERS[:1]) + list(topo.LOWER_LIP_INNER[1:-1]) + list(topo.MOUTH_CORNERS[1:])
        ]
        polygon = np.concatenate([upper, lower[-2:0:-1]])
        pad = int(np.ceil(3 * self.feather)) + 2
        h, w = out.shape[:2]
        x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + pad + 1, [w, h])
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.rint((polygon - [x0, y0]) * 8).astype(np.int32)], 255, cv2.LINE_AA, shift=3)
        alpha = cv2.GaussianBlur(mask.astype(np.float32) * (strength / 255.0), (0, 0), self.feather)
        fields = self._interior(upper, lower, x0, y0, mask.shape, gap_c)
        layers = cv2.merge([f * alpha for f in fields])
        blend = out[y0:y1, x0:x1].astype(np.float32)
        blend *= (1.0 - alpha)[:, :, None]
        blend += cv2.transform(layers, self._colours)
        blend += 0.5
        np.clip(blend, 0, 255, out=blend)
        out[y0:y1, x0:x1] = blend.astype(np.uint8)

    def _interior(
        self, upper: np.ndarray, lower: np.ndarray, x0: int, y0: int, shape: tuple[int, int], gap_c: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights of the cavity, tongue and teeth colours at every pixel of the box.

        The interior is layers of flat colours times scalar shading, so it is composed as three
        scalar fields and coloured once (one per-pixel 3x3 transform) instead of blending RGB
        images layer by layer.
        """
        ex, ey = self.frame.ex.astype(np.float32), self.frame.ey.astype(np.float32)
        centre = ((upper[0] + upper[-1]) / 2.0).astype(np.float32)
        half_w = max(float(abs((upper[-1] - upper[0]) @ ex)) / 2.0, 1.0)
        rx = np.arange(x0, x0 + shape[1], dtype=np.float32)[None, :] - centre[0]
        ry = np.arange(y0, y0 + shape[0], dtype=np.float32)[:, None] - centre[1]
        u = rx * ex[0] + ry * ex[1]
        v = rx * ey[0] + ry * ey[1]
        up_l = (upper - centre) @ np.stack([ex, ey], axis=1)
        lo_l = (lower - centre) @ np.stack([ex, ey], axis=1)
        reach = 1.2 * half_w + 4.0 * max(1.0, 0.012 * self.iod) + 2.0
        lut = _UniformLut(u, -reach, reach)
        yu = lut.curve(up_l)
        yl = lut.curve(lo_l)
        gap = np.maximum(yl - yu, 1.0)
        s = np.clip(u / half_w, -1.0, 1.0)
        d = v - yu  # depth below the upper inner lip
        t = np.clip(d / gap, 0.0, 1.0)
        iod = self.iod

        cavity = 1.0 - 0.6 * (1.0 - s * s) * (1.0 - (2.0 * t - 1.0) ** 2)  # darker deep inside
        tongue: np.ndarray | None = None
        teeth: np.ndarray | None = None
        wide = float(_smoothstep(0.12 * iod, 0.24 * iod, gap_c))
        if wide > 0.0:
            tongue_c = float(np.interp(0.0, *_sorted_xy(lo_l))) - 0.1 * gap_c
            r = np.hypot(u / (0.6 * half_w), (v - tongue_c) / max(0.38 * gap_c, 1.0))
            shade = 0.55 + 0.45 * np.clip((v - (tongue_c - 0.38 * gap_c)) / max(0.5 * gap_c, 1.0), 0.0, 1.0)
            a_t = wide * 0.9 * _smoothstep(1.0, 0.8, r)
            below = yl - v
            band = min(0.045 * iod, 0.2 * gap_c)
            a_lt = wide * 0.4 * _smoothstep(0.55, 0.35, np.abs(s)) * _smoothstep(band, band - 1.0, below)
            a_lt = a_lt * _smoothstep(0.0, 1.2, below)  # lower teeth, dimmed
            keep = 1.0 - a_lt
            cavity *= 1.0 - a_t
            cavity *= keep
            tongue = shade * a_t
            tongue *= keep
            teeth = 0.55 * a_lt

        teeth_h = np.minimum(0.09 * iod, 0.5 * gap)
        cover = _smoothstep(0.88, 0.62, np.abs(s)) * _smoothstep(teeth_h, teeth_h - 1.2, d)
        cover = cover * _smoothstep(-0.5, 0.8, d) * float(_smoothstep(0.02 * iod, 0.06 * iod, gap_c))
        rel = d / np.maximum(teeth_h, 1.0)
        lip_shadow = 0.7 + 0.3 * _smoothstep(0.0, 0.35, rel)  # the upper lip shades the gum line
        shade = (0.68 + 0.32 * np.cos(s * np.pi / 2.0)) * (1.0 - 0.2 * rel**2) * lip_shadow
        shade *= lut.table(self._incisor_table(lut.grid, half_w))
        a_ut = 0.95 * cover  # upper teeth
        keep = 1.0 - a_ut
        cavity *= keep
        if tongue is None:
            tongue = np.zeros_like(cavity)
        else:
            tongue *= keep
        upper_teeth = shade * a_ut
        if teeth is not None:
            teeth *= keep
            upper_teeth += teeth
        return cavity, tongue, upper_teeth

    def _incisor_table(self, grid: np.ndarray, half_w: float) -> np.ndarray:
        """Shading of the dark lines between the upper teeth along the across-mouth axis."""
        edge_px = max(1.0, 0.012 * self.iod)
        table = np.ones_like(grid)
        for edge in INCISOR_EDGES:
            for sign in (1.0, -1.0) if edge else (1.0,):
                table *= 1.0 - 0.16 * np.exp(-(((grid - sign * edge * half_w) / edge_px) ** 2))
        return table


class _UniformLut:
    """Functions of the across-mouth coordinate ``u`` evaluated per pixel: tabulated on a
    quarter-pixel grid, then looked up with one cv2.remap (linear interpolation, ends clamped,
    like np.interp) instead of a binary search per pixel."""

    STEP = 0.25

    def __init__(self, u: np.ndarray, lo: float, hi: float) -> None:
        self.grid = np.arange(lo, hi + self.STEP, self.STEP, dtype=np.float32)
        self._map_x = ((u - lo) * (1.0 / self.STEP)).astype(np.float32)
        self._map_y = np.zeros_like(self._map_x)

    def table(self, values: np.ndarray) -> np.ndarray:
        src = np.ascontiguousarray(values, dtype=np.float32).reshape(1, -1)
        return cv2.remap(src, self._map_x, self._map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def curve(self, points: np.ndarray) -> np.ndarray:
        """A polyline y(u) given by (u, y) points (any order), evaluated at every pixel."""
        return self.table(np.interp(self.grid, *_sorted_xy(points)))


def _sorted_xy(curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(curve[:, 0])
    return curve[order, 0], curve[order, 1]
