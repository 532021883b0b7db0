"""CPU renderer throughput on one core at 512², and where each frame's time goes.

Usage: python benchmarks/render_fps.py [--frames 600] [--image PATH]
Prints frames/s per core (from the thread's CPU time, so a shared, loaded machine still gives a
fair figure), p50/p99 per frame and the split rig / field (backward map) / remap / mouth / lids,
then the whole CpuEngine (audio→motion→render) on the sample speech.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.face import FaceAnalyzer  # noqa: E402
from models.render import FaceRenderer  # noqa: E402
from models.samples import SAMPLE_FACE, SAMPLE_SPEECH  # noqa: E402
from models.types import MotionFrame  # noqa: E402


def talking_motion(n: int, seed: int = 0) -> list[MotionFrame]:
    """A smooth, speech-like sequence: syllable-rate jaw, lip shapes, blinks every ~3 s, head sway."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 25.0
    jaw = np.clip(0.45 + 0.4 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)) + rng.normal(0, 0.08, n), 0, 1)
    frames = []
    for i in range(n):
        blink = max(0.0, 1.0 - abs((i % 75) - 3) / 3.0)
        frames.append(
            MotionFrame(
                index=i,
                jaw_open=float(jaw[i]),
                mouth_width=float(np.sin(2 * np.pi * 1.3 * t[i])),
                lip_press=float(max(0.0, np.sin(2 * np.pi * 0.7 * t[i]) - 0.8) * 5),
                blink_left=blink,
                blink_right=blink,
                pitch=float(3 * np.sin(2 * np.pi * 0.31 * t[i])),
                yaw=float(6 * np.sin(2 * np.pi * 0.17 * t[i])),
                roll=float(2 * np.sin(2 * np.pi * 0.23 * t[i])),
                gaze_x=float(0.4 * np.sin(2 * np.pi * 0.11 * t[i])),
            )
        )
    return frames


def bench_renderer(image_path: Path, n: int) -> None:
    analysis = FaceAnalyzer().analyze_bytes(image_path.read_bytes(), crop=True)
    t0 = time.perf_counter()
    renderer = FaceRenderer(analysis.image, analysis.landmarks)
    prep_ms = (time.perf_counter() - t0) * 1e3
    roi = renderer.field.roi
    print(
        f"avatar {renderer.size[0]}x{renderer.size[1]}, warp ROI {roi.width}x{roi.height}, "
        f"{len(renderer.mesh.triangles)} triangles, per-avatar precompute {prep_ms:.1f} ms"
    )
    motions = talking_motion(n)
    for m in motions[:20]:  # warm caches
        renderer.render(m)
    totals, walls, parts = [], [], {}
    for m in motions:
        t, w = time.thread_time(), time.perf_counter()
        _, split = renderer.render_timed(m)
        totals.append((time.thread_time() - t) * 1e3)
        walls.append((time.perf_counter() - w) * 1e3)
        for k, v in split.items():
            parts.setdefault(k, []).append(v)
    totals_a, walls_a = np.array(totals), np.array(walls)
    print(
        f"renderer: {1000.0 / totals_a.mean():.0f} frames/s per core (CPU time; "
        f"p50 {np.percentile(totals_a, 50):.2f} ms, p99 {np.percentile(totals_a, 99):.2f} ms per frame); "
        f"wall p50 {np.percentile(walls_a, 50):.2f} ms, p99 {np.percentile(walls_a, 99):.2f} ms; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for k, v in parts.items():
        arr = np.array(v)
        print(
            f"  {k:6s} p50 {np.percentile(arr, 50):6.3f} ms  p99 {np.percentile(arr, 99):6.3f} ms  "
            f"share {arr.mean() / totals_a.mean():5.1%}"
        )


def bench_engine(image_path: Path) -> None:
    import soundfile as sf

    from models.engines.cpu import CpuEngine
    from models.types import EngineParams

    pcm, _ = sf.read(SAMPLE_SPEECH, dtype="float32")
    engine = CpuEngine()
    params = EngineParams()
    avatar = engine.prepare_bytes(image_path.read_bytes(), params)
    stream = engine.open_stream(avatar, params)
    t = time.perf_counter()
    frames = []
    for i in range(0, len(pcm), 8000):
        frames += stream.push_audio(pcm[i : i + 8000])
    frames += stream.flush()
    elapsed = time.perf_counter() - t
    stream.close()
    audio_s = len(pcm) / 16000
    print(
        f"CpuEngine end to end: {len(frames)} frames for {audio_s:.1f} s of speech in {elapsed:.2f} s "
        f"= {len(frames) / elapsed:.0f} frames/s, {audio_s / elapsed:.1f}x real time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--image", type=Path, default=SAMPLE_FACE)
    parser.add_argument("--no-engine", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    bench_renderer(args.image, args.frames)
    if not args.no_engine:
        bench_engine(args.image)


if __name__ == "__main__":
    main()
