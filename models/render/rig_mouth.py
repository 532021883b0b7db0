"""Per-vertex gains of the mouth: jaw hinge, lip spread/rounding, pout and press.

The lips are regions, not just contours: MediaPipe places rows of vertices *inside* each lip,
and every one of them must move with its lip, or the lip folds over itself when the jaw drops.
Lip-region membership is therefore decided by polygon tests against the inner/outer contours,
and each lip vertex gets its depth fraction between the two (0 at the inner edge, 1 outer).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.face import topology as topo

JAW_DROP_IOD = 0.25  # lower-lip drop at jaw_open = 1, in inter-ocular distances
UPPER_LIP_RAISE = 0.10  # the upper lip rises by this fraction of the drop (shows the upper teeth)
POUT_IOD = 0.035  # outer lips bulge out when rounded
PRESS_IOD = 0.03  # lips roll in / thin when pressed
CLOSED_GAP_IOD = 0.02  # a source inner-lip gap below this counts as a closed mouth


def smoothstep(e0: float | np.ndarray, e1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True, slots=True)
class MouthGains:
    jaw: np.ndarray  # (V,) local-y displacement per pixel of lower-lip drop
    upper_raise: np.ndarray  # (V,) local-y displacement per pixel of drop (negative = up)
    width: np.ndarray  # (V,) local-x displacement per unit of relative lip width change
    pout: np.ndarray  # (V,) local-y displacement at full rounding
    press: np.ndarray  # (V,) local-y displacement at full press
    drop_px: float  # lower-lip drop at jaw_open = 1
    source_gap_px: float  # jaw drop that shuts the photo's open mouth (undone by the rig at jaw_open = 0)


def _curve(local: np.ndarray, ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    pts = local[list(ids)]
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]


def _depth_inside(local: np.ndarray, outer: tuple[int, ...], inner: tuple[int, ...]) -> np.ndarray:
    """Signed distance of every vertex into the lip polygon (> 0 inside)."""
    polygon = np.concatenate([local[list(outer)], local[list(reversed(inner))]]).astype(np.float32)
    contour = polygon.reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(p[0]), float(p[1])), True) for p in local])


def mouth_gains(local: np.ndarray, iod: float, static: np.ndarray) -> MouthGains:
    """``local``: (V, 2) face-local vertex positions; ``static``: vertices that never move."""
    x, y = local[:, 0], local[:, 1]
    # contour vertices decide first: a closed mouth's inner contours touch or even cross, so a
    # polygon test alone would hand lower-lip vertices to the upper lip; corners belong to neither
    d_up = _depth_inside(local, topo.UPPER_LIP_OUTER, topo.UPPER_LIP_INNER)
    d_lo = _depth_inside(local, topo.LOWER_LIP_OUTER, topo.LOWER_LIP_INNER)
    upper = (d_up >= -0.5) & (d_up >= d_lo)
    lower = (d_lo >= -0.5) & (d_lo > d_up)
    lower_ids = list(topo.LOWER_LIP_OUTER[1:-1] + topo.LOWER_LIP_INNER[1:-1])
    upper_ids = list(topo.UPPER_LIP_OUTER[1:-1] + topo.UPPER_LIP_INNER[1:-1])
    upper[lower_ids], lower[upper_ids] = False, False
    upper[upper_ids], lower[lower_ids] = True, True
    corner_ids = [
        topo.LOWER_LIP_OUTER[0],
        topo.LOWER_LIP_OUTER[-1],
        topo.LOWER_LIP_INNER[0],
        topo.LOWER_LIP_INNER[-1],
    ]
    upper[corner_ids], lower[corner_ids] = False, False
    corners = local[list(topo.MOUTH_CORNERS)]
    mx = float(corners[:, 0].mean())
    half_width = max(float(np.ptp(corners[:, 0])) / 2.0, 0.2 * iod)
    lateral = np.abs(x - mx) / half_width
    lip_taper = 0.35 + 0.65 * (1.0 - np.minimum(lateral, 1.0) ** 2)

    y_lo_in = np.interp(x, *_curve(local, topo.LOWER_LIP_INNER))
    y_lo_out = np.interp(x, *_curve(local, topo.LOWER_LIP_OUTER))
    y_up_in = np.interp(x, *_curve(local, topo.UPPER_LIP_INNER))
    y_up_out = np.interp(x, *_curve(local, topo.UPPER_LIP_OUTER))

    # Jaw: a linearised hinge about the ear axis. Below the lower inner lip everything belongs to
    # the mandible; the lip tapers towards the corners, the taper fading out towards the chin.
    y_pivot = float(local[[topo.CHEEK_RIGHT, topo.CHEEK_LEFT], 1].mean())
    y_lip = float(local[topo.INNER_LIP_MID[1], 1])
    hinge = np.clip((y - y_pivot) / max(y_lip - y_pivot, 1e-3), 0.0, 1.3)
    onset = smoothstep(y_lo_in - 0.12 * iod, y_lo_in, y)
    towards_chin = smoothstep(y_lo_out, y_lo_out + 0.35 * iod, y)
    member = onset * (lip_taper + (1.0 - lip_taper) * towards_chin)
    # the upper lip stays, except near the corners, which follow the jaw a little: otherwise all
    # of the commissure's stretch lands in the few triangles between the corner rows
    member[upper] = 0.3 * np.minimum(lateral[upper], 1.0) ** 4
    member[static] = 0.0
    jaw = member * hinge

    depth_lo = np.clip((y - y_lo_in) / np.maximum(y_lo_out - y_lo_in, 1e-3), 0.0, 1.0)
    depth_up = np.clip((y_up_in - y) / np.maximum(y_up_in - y_up_out, 1e-3), 0.0, 1.0)
    upper_raise = np.where(upper, -UPPER_LIP_RAISE * (1.0 - 0.7 * depth_up) * lip_taper, 0.0)

    # Lip width / rounding: horizontal scaling about the mouth centre with a soft falloff.
    mouth_y = 0.5 * (float(local[topo.INNER_LIP_MID[0], 1]) + y_lip)
    r = np.hypot((x - mx) / (1.3 * half_width), (y - mouth_y) / half_width)
    falloff = np.exp(-(np.maximum(r - 0.8, 0.0) ** 2) / 0.25)
    falloff[upper | lower] = 1.0
    falloff[static] = 0.0

    shape = 1.0 - np.minimum(lateral, 1.0) ** 2
    pout = np.zeros(len(local))
    pout[upper] = -shape[upper] * (0.3 + 0.7 * depth_up[upper])
    pout[lower] = shape[lower] * (0.3 + 0.7 * depth_lo[lower])

    gap = float(local[topo.INNER_LIP_MID[1], 1] - local[topo.INNER_LIP_MID[0], 1])
    # the rest pose must shut the photo's opening exactly: at the lower lip's centre the jaw gain
    # is below 1 where the centre sits off the corners' midline (a turned head: 0.69 at ~45°, and
    # the upper lip follows a little), so the closing drop is scaled to bring the lips together
    mid_gain = float(jaw[topo.INNER_LIP_MID[1]] - jaw[topo.INNER_LIP_MID[0]])  # lower minus upper lip
    closing = gap / max(mid_gain, 0.67)
    return MouthGains(
        jaw=jaw,
        upper_raise=upper_raise,
        width=(x - mx) * falloff,
        pout=pout * POUT_IOD * iod,
        press=-pout * PRESS_IOD * iod,
        drop_px=JAW_DROP_IOD * iod,
        source_gap_px=closing if gap > CLOSED_GAP_IOD * iod else 0.0,
    )
