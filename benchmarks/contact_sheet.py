"""Render labelled key poses of the CPU renderer into benchmarks/out/contact_sheet.png.

Usage: python benchmarks/contact_sheet.py [--image PATH] [--crop-only]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", type=Path, default=SAMPLE_FACE)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "contact_sheet.png")
    args = parser.parse_args()
    sheet = render_sheet(args.image)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
