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
TOOTH_ARC_RAD = 0.27
"""Arch angle per tooth seen from the front: boundaries at sin(k·0.27) of the half mouth width."""
TEETH_SHARE = 0.3
"""A photo's opening counts as showing teeth when this share of it is bright and unsaturated."""
SOURCE_OPEN_IOD = 0.02  # a photo whose inner lips are further apart than this shows an open mouth


def _smoothstep(e0: float, e1: float, x: np.ndarray | float) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float32) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _region_mean(image: np.ndarray, outer: np.ndarray, inner: np.ndarray | None = None) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.rint(outer).astype(np.int32)], (255,))
    if inner is not None:
        cv2.fillPoly(mask, [np.rint(inner).astype(np.int32)], (0,))
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
        # warm tints only as far as the photo has colour: a black-and-white portrait gets a gray mouth
        tint = float(np.clip((skin.max() - skin.min()) / 40.0, 0.0, 1.0))
        teeth = TEETH_RGB.mean() + tint * (TEETH_RGB - TEETH_RGB.mean())
        self.cavity_rgb = lip * 0.22 + np.array([6.0, 2.0, 3.0], np.float32) * tint
        self.tongue_rgb = lip * 0.62 + np.array([22.0, 4.0, 8.0], np.float32) * brightness * tint
        self.teeth_rgb = (0.85 * teeth + 0.15 * skin) * brightness
        self.feather = max(0.6, 0.008 * self.iod)
        inner = ref[list(topo.INNER_MOUTH_CONTOUR)]
        mid_gap = float((ref[topo.INNER_LIP_MID[1]] - ref[topo.INNER_LIP_MID[0]]) @ frame.ey)
        self.source_open = mid_gap > SOURCE_OPEN_IOD * self.iod
        """The photo's mouth is open (teeth or cavity visible): the rig closes it at rest."""
        self._inner_ref = inner
        self.rest_gap = 0.0
        """Inner-lip gap of the rest pose (set by the renderer, which knows the rig)."""
        self._lip_rgb = lip
        # columns: the colours that cv2.transform mixes per pixel by the (cavity, tongue, teeth) weights
        self.gum_rgb = lip * 0.8 + np.array([30.0, 4.0, 8.0], np.float32) * brightness * tint
        colours = [self.cavity_rgb, self.tongue_rgb, self.teeth_rgb, self.gum_rgb]
        self._colours = np.stack(colours, axis=1).astype(np.float32)
        self._photo = image
        self.photo_teeth = self.source_open and _shows_teeth(image, inner, lip)
        """The photo shows teeth: the interior reuses them instead of synthesized ones."""
        corners = ref[list(topo.MOUTH_CORNERS)]
        self._ref_centre = corners.mean(axis=0).astype(np.float32)
        self._ref_half_w = max(float(abs((corners[1] - corners[0]) @ frame.ex)) / 2.0, 1.0)
        axes = np.stack([frame.ex, frame.ey], axis=1).astype(np.float32)
        self._ref_upper = (ref[_UPPER_CONTOUR] - self._ref_centre) @ axes
        self._ref_lower = (ref[_LOWER_CONTOUR] - self._ref_centre) @ axes

    def sealed(self, image: np.ndarray) -> np.ndarray:
        """The photo with its open mouth filled with lip, for the warp to close at rest.

        Why: the rig closes a teeth-showing smile by pressing the lips together, which squeezes
        the teeth (and any dark gap) between them into a thin jagged white seam. Filled with the
        lips' own colour — darker at the centre, where lips meet — the squeezed band reads as the
        line of a closed-lip smile; the interior painter covers it again whenever the mouth opens.
        A closed photo is returned as it is.
        """
        if not self.source_open:
            return image
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.rint(self._inner_ref * 8).astype(np.int32)], (255,), cv2.LINE_AA, shift=3)
        grow = max(1, round(0.01 * self.iod))
        mask = np.asarray(
            cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))),
            np.uint8,
        )
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(0.6, 0.5 * grow))[:, :, None]
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            return image
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        # lip colour above and below the opening, blended top to bottom, with the darker contact line
        t = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[:, None, None]
        shade = 0.74 + 0.26 * np.abs(2.0 * t - 1.0)
        fill = np.broadcast_to(self._lip_rgb * shade, (y1 - y0, x1 - x0, 3))
        out = image.astype(np.float32)
        a = alpha[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1.0 - a) + fill * a
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def opening(self, deformed: np.ndarray) -> float:
        """Inner-lip gap at the mouth centre in pixels (along the face's vertical axis)."""
        upper, lower = deformed[topo.INNER_LIP_MID[0]], deformed[topo.INNER_LIP_MID[1]]
        return float((lower - upper) @ self.frame.ey)

    def paint(self, out: np.ndarray, deformed: np.ndarray) -> None:
        """Paint the interior into ``out`` (in place) for the deformed vertex positions."""
        gap_c = self.opening(deformed)
        # the rig closes an open-mouthed photo at rest, so any visible gap is painted, whatever the
        # source — measured from the rest pose's own gap, so the rest frame is never painted (a
        # turned or asymmetric face does not close exactly; the sealed photo shows lip there)
        strength = float(_smoothstep(0.01 * self.iod, 0.05 * self.iod, gap_c - self.rest_gap))
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
        cv2.fillPoly(mask, [np.rint((polygon - [x0, y0]) * 8).astype(np.int32)], (255,), cv2.LINE_AA, shift=3)
        alpha = cv2.GaussianBlur(mask.astype(np.float32) * (strength / 255.0), (0, 0), self.feather)
        fields, photo = self._interior(upper, lower, x0, y0, (y1 - y0, x1 - x0), gap_c)
        layers = cv2.merge([f * alpha for f in fields])
        blend = out[y0:y1, x0:x1].astype(np.float32)
        blend *= (1.0 - alpha)[:, :, None]
        blend += cv2.transform(layers, self._colours)
        if photo is not None:
            texture, weight = photo
            blend += texture * (weight * alpha)[:, :, None]
        blend += 0.5
        np.clip(blend, 0, 255, out=blend)
        out[y0:y1, x0:x1] = blend.astype(np.uint8)

    def _interior(
        self, upper: np.ndarray, lower: np.ndarray, x0: int, y0: int, shape: tuple[int, int], gap_c: float
    ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, np.ndarray] | None]:
        """Weights of the cavity, tongue, teeth and gum colours at every pixel of the box, plus
        the photo's own teeth (RGB texture and its weight) when the photo shows them.

        The synthesized interior is layers of flat colours times scalar shading, so it is
        composed as four scalar fields and coloured once (one per-pixel 3x4 transform) instead of
        blending RGB images layer by layer.
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

        if self.photo_teeth:
            texture, a_photo = self._photo_teeth(lut, u, v, yu, yl, s, ex, ey, centre, half_w, gap_c)
            keep = 1.0 - a_photo
            cavity *= keep
            tongue = np.zeros_like(cavity) if tongue is None else tongue * keep
            teeth = np.zeros_like(cavity) if teeth is None else teeth * keep
            return (cavity, tongue, teeth, np.zeros_like(cavity)), (texture, a_photo)

        # synthesized upper teeth: perspective-narrowing teeth with rounded incisal edges, each
        # convex (lit at its centre), the row darker towards the corners (cheek occlusion) and
        # under the lip (its shadow), a gum band at the top where the lip rises high enough
        teeth_h = np.minimum(0.09 * iod, 0.5 * gap)
        tooth_shade, tooth_len = self._tooth_tables(lut.grid, half_w)
        edge = teeth_h * lut.table(tooth_len)
        cover = _smoothstep(0.9, 0.66, np.abs(s)) * _smoothstep(edge, edge - 1.2, d)
        cover = cover * _smoothstep(-0.5, 0.8, d) * float(_smoothstep(0.02 * iod, 0.06 * iod, gap_c))
        rel = d / np.maximum(teeth_h, 1.0)
        lip_shadow = 0.62 + 0.38 * _smoothstep(0.0, 0.45, rel)  # the upper lip shades the top
        shade = (0.55 + 0.45 * np.cos(s * np.pi / 2.0)) * (1.0 - 0.25 * rel**2) * lip_shadow
        shade *= lut.table(tooth_shade)
        gum = cover * _smoothstep(0.16, 0.04, rel) * float(_smoothstep(0.14 * iod, 0.26 * iod, gap_c))
        a_ut = 0.95 * cover  # upper teeth
        keep = 1.0 - a_ut
        cavity *= keep
        if tongue is None:
            tongue = np.zeros_like(cavity)
        else:
            tongue *= keep
        upper_teeth = shade * (a_ut - 0.95 * gum)
        if teeth is not None:
            teeth *= keep
            upper_teeth += teeth
        return (cavity, tongue, upper_teeth, 0.95 * gum * lip_shadow), None

    def _photo_teeth(
        self,
        lut: _UniformLut,
        u: np.ndarray,
        v: np.ndarray,
        yu: np.ndarray,
        yl: np.ndarray,
        s: np.ndarray,
        ex: np.ndarray,
        ey: np.ndarray,
        centre: np.ndarray,
        half_w: float,
        gap_c: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The photo's own teeth, resampled into the deformed opening.

        The upper part of the photo's opening is hung from the upper inner lip (upper teeth move
        with the upper jaw: a pixel d below the deformed lip shows what lay d below the photo's
        lip), the lower part from the lower inner lip, so lower teeth come down with the jaw and
        the dark cavity opens between them; upper teeth cover lower ones where they overlap.
        """
        k = self._ref_half_w / half_w
        src_up = lut.curve(np.column_stack([self._ref_upper[:, 0] / k, self._ref_upper[:, 1]]))
        src_lo = lut.curve(np.column_stack([self._ref_lower[:, 0] / k, self._ref_lower[:, 1]]))
        src_gap = np.maximum(src_lo - src_up, 1.0)
        d = v - yu
        e = yl - v
        split_up = 0.62 * src_gap
        # at or below the photo's own opening the two halves overlap (no cavity line between them)
        split_lo = 0.38 * src_gap + np.clip(src_gap + 2.0 - (yl - yu), 0.0, 2.0)
        # no ramp at the lips: above the deformed lip the resampling shows the photo's own lip,
        # so teeth meet lip as they do in the photo (a ramp there draws a dark rim)
        a_up = _smoothstep(split_up + 1.0, split_up - 1.0, d)
        a_lo = _smoothstep(split_lo + 1.0, split_lo - 1.0, e) * (1.0 - a_up)
        us = u * k
        vs = a_up * (src_up + d) + (1.0 - a_up) * (src_lo - e)
        c = self._ref_centre
        map_x = (c[0] + us * ex[0] + vs * ey[0]).astype(np.float32)
        map_y = (c[1] + us * ex[1] + vs * ey[1]).astype(np.float32)
        texture = cv2.remap(self._photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # soft occlusion: the corners and the lips' undersides shade the reused teeth a little
        occlusion = (0.72 + 0.28 * np.cos(s * np.pi / 2.0)) * (
            0.8 + 0.2 * _smoothstep(0.0, 0.25 * np.maximum(src_gap, 1.0), d)
        )
        texture = texture.astype(np.float32) * occlusion[:, :, None]
        open_k = float(_smoothstep(0.0, 0.02 * self.iod, gap_c))
        weight = (a_up + a_lo) * _smoothstep(1.15, 1.0, np.abs(u / max(half_w, 1.0))) * open_k
        return texture, weight.astype(np.float32)

    def _tooth_tables(self, grid: np.ndarray, half_w: float) -> tuple[np.ndarray, np.ndarray]:
        """Per across-mouth position: tooth shading (convex, dark gaps between teeth) and the
        tooth's length as a share of the row's (rounded incisal corners, shorter to the sides).

        Teeth sit on an arch seen from the front, so their boundaries are at sin(k·θ) of the half
        width: wide central incisors, ever narrower towards the corners (perspective)."""
        s = np.clip(np.abs(grid) / half_w, 0.0, 1.0)
        angle = np.arcsin(s) / TOOTH_ARC_RAD  # in teeth from the midline
        frac = angle - np.floor(angle)  # position across the tooth, 0..1
        convex = 0.8 + 0.2 * np.sin(np.pi * frac)
        gap_w = np.maximum(0.05, 0.9 / max(half_w * TOOTH_ARC_RAD, 1.0))  # about a pixel of dark gap
        seam = 1.0 - 0.3 * np.exp(-((np.minimum(frac, 1.0 - frac) / gap_w) ** 2))
        length = (1.0 - 0.22 * (2.0 * frac - 1.0) ** 6) * (1.0 - 0.3 * s**2)
        return (convex * seam).astype(np.float32), length.astype(np.float32)


def _shows_teeth(image: np.ndarray, inner: np.ndarray, lip: np.ndarray) -> bool:
    """Whether the photo's mouth opening is mostly teeth: bright, unsaturated pixels."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.rint(inner).astype(np.int32)], (255,))
    pixels = image[mask > 0].astype(np.float32)
    if len(pixels) < 12:
        return False
    lum = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    lip_lum = float(lip @ np.array([0.299, 0.587, 0.114], np.float32))
    chroma = pixels.max(axis=1) - pixels.min(axis=1)
    bright = (lum > lip_lum + 0.3 * (255.0 - lip_lum)) & (chroma < 0.35 * np.maximum(pixels.max(axis=1), 1.0))
    return float(bright.mean()) > TEETH_SHARE


_UPPER_CONTOUR = (
    list(topo.MOUTH_CORNERS[:1]) + list(topo.UPPER_LIP_INNER[1:-1]) + list(topo.MOUTH_CORNERS[1:])
)
_LOWER_CONTOUR = (
    list(topo.MOUTH_CORNERS[:1]) + list(topo.LOWER_LIP_INNER[1:-1]) + list(topo.MOUTH_CORNERS[1:])
)


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
