"""Face analysis cost per uploaded image: first call (graph start-up) vs later calls.

Usage: python benchmarks/face_analysis.py [--repeat 10] [--image PATH]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.face import FaceAnalyzer  # noqa: E402
from models.samples import SAMPLE_FACE  # noqa: E402


def _jpeg(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--image", type=Path, default=SAMPLE_FACE)
    args = parser.parse_args()
    data = args.image.read_bytes()
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    big = np.asarray(Image.fromarray(rgb).resize((5120, 6000), Image.BILINEAR))
    big = np.pad(big, ((0, 0), (1440, 1440), (0, 0)), mode="edge")
    cases = {"sample upload": data, "8000x6000 jpeg": _jpeg(big)}

    analyzer = FaceAnalyzer()
    t = time.perf_counter()
    first = analyzer.analyze_bytes(data)
    print(
        f"first call (creates MediaPipe graphs): {(time.perf_counter() - t) * 1e3:.0f} ms "
        f"(detect {first.timings_ms['detect']:.0f}, mesh {first.timings_ms['mesh']:.0f})"
    )
    for name, blob in cases.items():
        for crop in (True, False):
            runs = [analyzer.analyze_bytes(blob, crop=crop).timings_ms for _ in range(args.repeat)]
            total = np.array([r["total"] for r in runs])
            parts = "  ".join(
                f"{k} {np.median([r[k] for r in runs]):.1f}" for k in ("decode", "detect", "mesh")
            )
            print(
                f"{name:15s} crop={crop!s:5s}: p50 {np.median(total):6.1f} ms  max {total.max():6.1f} ms  "
                f"({parts} ms; {len(blob) / 1e6:.1f} MB)"
            )


if __name__ == "__main__":
    main()
