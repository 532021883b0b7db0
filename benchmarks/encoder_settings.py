"""x264 settings for the live encoder: CPU per media second against bitrate and quality.

Why: every live session runs its own encoder, so its CPU is a fixed share of each session's cost
(issue 14: ~0.07 core of ~0.26). This renders a talking head once (the CPU engine on a face and
voice, 512², 25 fps), keeps it as raw I420, then encodes it with each candidate setting the way
the live sinks do (``threads 1``, ``tune zerolatency``, CRF, 1 s GOP) and prints, per setting:
encoder CPU seconds per media second (user + sys of the ffmpeg child), bitrate, and PSNR/SSIM of
the decoded result against the raw input (ffmpeg's own filters).

    python benchmarks/encoder_settings.py [--seconds 10] [--image PATH] [--audio PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hls.ffmpeg_tools import ffmpeg_exe  # noqa: E402
from models.engines.cpu import CpuEngine  # noqa: E402
from models.samples import SAMPLE_FACE, SAMPLE_SPEECH  # noqa: E402
from models.types import FPS, EngineParams  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "veryfast": ["-preset", "veryfast"],
    "superfast": ["-preset", "superfast"],
    "superfast no-deblock": ["-preset", "superfast", "-x264-params", "no-deblock=1"],
    "superfast aq0": ["-preset", "superfast", "-x264-params", "aq-mode=0"],
    "superfast aq0 no-8x8dct": ["-preset", "superfast", "-x264-params", "aq-mode=0:no-8x8dct=1"],
    "ultrafast": ["-preset", "ultrafast"],
    "ultrafast cabac": ["-preset", "ultrafast", "-x264-params", "cabac=1"],
    "ultrafast cabac deblock": ["-preset", "ultrafast", "-x264-params", "cabac=1:deblock=0,0"],
}


def render_clip(image: Path, audio: Path, seconds: float, out: Path) -> int:
    """Raw I420 frames of the CPU engine's rendering (what the sinks feed ffmpeg); frame count."""
    engine = CpuEngine()
    params = EngineParams(seed=1)
    avatar = engine.prepare_bytes(image.read_bytes(), params)
    pcm, rate = sf.read(audio, dtype="float32", always_2d=True)
    pcm = pcm.mean(axis=1)
    if rate != 16_000:
        import soxr

        pcm = soxr.resample(pcm, rate, 16_000).astype(np.float32)
    need = int(seconds * 16_000)
    pcm = np.tile(pcm, -(-need // len(pcm)))[:need]
    stream = engine.open_stream(avatar, params)
    frames = 0
    with out.open("wb") as f:
        for a in range(0, len(pcm), 16_000):
            for fr in stream.push_audio(pcm[a : a + 16_000]):
                f.write(cv2.cvtColor(fr.image, cv2.COLOR_RGB2YUV_I420).tobytes())
                frames += 1
        for fr in stream.flush():
            f.write(cv2.cvtColor(fr.image, cv2.COLOR_RGB2YUV_I420).tobytes())
            frames += 1
    stream.close()
    engine.close()
    return frames


def _raw_input(raw: Path, size: int) -> list[str]:
    size_arg = f"{size}x{size}"
    return ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size_arg, "-framerate", str(FPS), "-i", str(raw)]


def encode(raw: Path, size: int, args: list[str], out: Path, crf: int) -> float:
    """CPU seconds (user + sys) the encode took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        *_raw_input(raw, size),
        "-c:v", "libx264", *args, "-tune", "zerolatency", "-crf", str(crf), "-g", str(FPS),
        "-keyint_min", str(FPS), "-sc_threshold", "0", "-threads", "1", "-pix_fmt", "yuv420p", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def quality(raw: Path, size: int, encoded: Path) -> tuple[float, float]:
    """(PSNR dB, SSIM) of the decoded encode against the raw frames."""
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(encoded), *_raw_input(raw, size),
        "-lavfi", "[0:v][1:v]psnr;[0:v][1:v]ssim", "-f", "null", "-",
    ]  # fmt: skip
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    psnr = float(re.search(r"PSNR .*average:([0-9.]+|inf)", err).group(1))  # type: ignore[union-attr]
    ssim = float(re.search(r"SSIM .*All:([0-9.]+)", err).group(1))  # type: ignore[union-attr]
    return psnr, ssim


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--image", type=Path, default=SAMPLE_FACE)
    ap.add_argument("--audio", type=Path, default=SAMPLE_SPEECH)
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--repeat", type=int, default=3, help="encodes per setting (CPU: the minimum)")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    args = ap.parse_args(argv)
    chosen = [v.strip() for v in args.only.split(",") if v.strip()] or list(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "clip.yuv"
        frames = render_clip(args.image, args.audio, args.seconds, raw)
        size = round((raw.stat().st_size / frames / 1.5) ** 0.5)
        media_s = frames / FPS
        load = os.getloadavg()[0]
        print(f"clip: {frames} frames ({media_s:.1f} s) at {size}², CRF {args.crf}; load {load:.2f}")
        print(f"{'setting':26s} {'core/session':>12s} {'Mbit/s':>7s} {'PSNR dB':>8s} {'SSIM':>7s}")
        for name in chosen:
            out = Path(tmp) / "out.mp4"
            cpu = min(encode(raw, size, VARIANTS[name], out, args.crf) for _ in range(max(1, args.repeat)))
            mbit = out.stat().st_size * 8 / media_s / 1e6
            psnr, ssim = quality(raw, size, out)
            print(f"{name:26s} {cpu / media_s:12.4f} {mbit:7.2f} {psnr:8.2f} {ssim:7.4f}", flush=True)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
