"""Render labelled key poses of the CPU renderer into benchmarks/out/contact_sheet.png.

Usage: python benchmarks/contact_sheet.py [--image PATH]
       python benchmarks/contact_sheet.py --faces   (benchmarks/out/contact_faces.png: the mouth of
       every kind of photo — teeth-showing smile, beard, glasses, grayscale, turned head, low-res —
       at rest, on M/B/P, half and wide open, with the source photo's mouth first)
Each tile is the face region of a rendered frame at native resolution, so artefacts (tearing,
stretched teeth, lid edges) are visible when the sheet is viewed at 100 %.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.face import FaceAnalyzer  # noqa: E402
from models.render import FaceRenderer  # noqa: E402
from models.samples import SAMPLE_FACE  # noqa: E402
from models.types import MotionFrame  # noqa: E402

POSES: list[tuple[str, MotionFrame]] = [
    ("neutral", MotionFrame(0)),
    ("half open", MotionFrame(0, jaw_open=0.5)),
    ("wide open", MotionFrame(0, jaw_open=1.0)),
    ("oo (round)", MotionFrame(0, jaw_open=0.35, mouth_width=-1.0)),
    ("ee (spread)", MotionFrame(0, jaw_open=0.25, mouth_width=1.0)),
    ("m (press)", MotionFrame(0, lip_press=1.0)),
    ("blink", MotionFrame(0, blink_left=1.0, blink_right=1.0)),
    ("half blink", MotionFrame(0, blink_left=0.5, blink_right=0.5)),
    ("yaw +20", MotionFrame(0, yaw=20.0)),
    ("yaw -20", MotionFrame(0, yaw=-20.0)),
    ("pitch +15", MotionFrame(0, pitch=15.0)),
    ("pitch -15", MotionFrame(0, pitch=-15.0)),
    ("roll +10", MotionFrame(0, roll=10.0)),
    ("gaze right", MotionFrame(0, gaze_x=1.0)),
    ("gaze left", MotionFrame(0, gaze_x=-1.0)),
    ("talk+yaw+blink", MotionFrame(0, jaw_open=0.7, yaw=12.0, pitch=5.0, blink_left=0.6, blink_right=0.6)),
]
TILE = 288
COLUMNS = 4


def render_sheet(image_path: Path) -> np.ndarray:
    analysis = FaceAnalyzer().analyze_bytes(image_path.read_bytes(), crop=True)
    renderer = FaceRenderer(analysis.image, analysis.landmarks)
    centre = analysis.landmarks[:, :2].mean(axis=0)
    h, w = analysis.image.shape[:2]
    x0 = int(np.clip(centre[0] - TILE / 2, 0, w - TILE))
    y0 = int(np.clip(centre[1] - TILE / 2, 0, h - TILE))
    tiles = []
    for label, motion in POSES:
        frame = renderer.render(motion)[y0 : y0 + TILE, x0 : x0 + TILE].copy()
        cv2.rectangle(frame, (0, 0), (TILE, 22), (0, 0, 0), -1)
        cv2.putText(frame, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(frame)
    rows = [np.concatenate(tiles[i : i + COLUMNS], axis=1) for i in range(0, len(tiles), COLUMNS)]
    return np.concatenate(rows, axis=0)


MOUTH_POSES: list[tuple[str, MotionFrame]] = [
    ("rest", MotionFrame(0)),
    ("M/B/P", MotionFrame(0, lip_press=1.0, speech=1.0)),
    ("F/V", MotionFrame(0, jaw_open=0.1, lip_press=0.45, speech=1.0)),
    ("speaking", MotionFrame(0, jaw_open=0.5, speech=1.0)),
    ("wide open", MotionFrame(0, jaw_open=1.0, speech=1.0)),
    ("oo", MotionFrame(0, jaw_open=0.4, mouth_width=-1.0, speech=1.0)),
]
FACE_SET = (
    "astronaut-teeth",
    "astronaut-beard",
    "astronaut-glasses",
    "hopper-glasses",
    "hopper-gray-940",
    "table-left-turned",
    "hanks-small",
    "astronaut-lowres",
)
MOUTH_TILE = 160


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _cut(img: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    x0, y0, side = box
    return cv2.resize(
        img[y0 : y0 + side, x0 : x0 + side], (MOUTH_TILE, MOUTH_TILE), interpolation=cv2.INTER_CUBIC
    )


def render_faces_sheet() -> np.ndarray:
    """One row per kind of photo: the photo's own mouth, then each mouth pose (lower face, 2×)."""
    from benchmarks.eval_media import faces
    from models.face import topology as topo

    analyzer = FaceAnalyzer()
    rows = []
    for name, rgb in faces().items():
        if name not in FACE_SET:
            continue
        analysis = analyzer.analyze(rgb)
        renderer = FaceRenderer(analysis.image, analysis.landmarks)
        lips = analysis.landmarks[list(topo.UPPER_LIP_OUTER + topo.LOWER_LIP_OUTER), :2]
        cx, cy = lips.mean(axis=0)
        half = max(24, int(np.ptp(lips[:, 0]) * 0.9))
        h, w = analysis.image.shape[:2]
        x0, y0 = int(np.clip(cx - half, 0, w - 2 * half)), int(np.clip(cy - half * 0.8, 0, h - 2 * half))

        box = (x0, y0, 2 * half)
        tiles = [_label(_cut(analysis.image, box), f"{name} (photo)")]
        tiles += [_label(_cut(renderer.render(m), box), label) for label, m in MOUTH_POSES]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--image", type=Path, default=SAMPLE_FACE)
    parser.add_argument("--faces", action="store_true", help="the mouth sheet over the evaluation faces")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.faces:
        sheet = render_faces_sheet()
        args.out = args.out or ROOT / "benchmarks" / "out" / "contact_faces.png"
    else:
        sheet = render_sheet(args.image)
        args.out = args.out or ROOT / "benchmarks" / "out" / "contact_sheet.png"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
