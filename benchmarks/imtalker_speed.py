"""IMTalker engine speed per stage, with the conformance manifest weights (same shapes and
FLOPs as the real checkpoints). CPU always; the GPU path (several sessions' windows batched in
one forward) runs when CUDA is present.

    python benchmarks/imtalker_speed.py [--conformance DIR] [--sessions 4] [--nfe 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from models.imtalker.engine import ImTalkerEngine
from models.imtalker.generator import WindowContext
from models.imtalker.motion_stream import WINDOW_SAMPLES, WindowRequest, generate_windows
from models.imtalker.testing_weights import write_checkpoint_folder

DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "imtalker"


def timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def run(engine: ImTalkerEngine, sessions: int, nfe: int, cfg: float, render_frames: int) -> None:
    device = engine.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)
    image = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0)).to(device)
    portrait = engine.renderer.encode_portrait(image)
    t_encode = timed(lambda: engine.renderer.encode_portrait(image), sync)
    requests = [
        WindowRequest(
            (0.1 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32),
            portrait.motion_code,
            WindowContext.zeros(1, device),
            torch.randn(1, 50, 32).to(device),
            None,
            None,
        )
        for _ in range(sessions)
    ]
    generate_windows(engine.audio_encoder, engine.generator, requests[:1], nfe, cfg)  # warm-up
    t_one = timed(
        lambda: generate_windows(engine.audio_encoder, engine.generator, requests[:1], nfe, cfg), sync
    )
    t_all = timed(lambda: generate_windows(engine.audio_encoder, engine.generator, requests, nfe, cfg), sync)
    codes = torch.randn(render_frames, 32).to(device)
    engine.render_frames(codes[: engine.render_batch], portrait)  # warm-up
    t_render = timed(lambda: engine.render_frames(codes, portrait), sync)
    per_frame_render = t_render / render_frames
    print(f"device {device}, torch threads {torch.get_num_threads()}, nfe {nfe}, cfg {cfg}")
    print(f"  portrait encode (once per session): {t_encode * 1e3:8.1f} ms")
    print(f"  motion, 1 window (50 frames):      {t_one * 1e3:8.1f} ms = {t_one / 50 * 1e3:6.2f} ms/frame")
    print(f"  motion, {sessions} sessions batched:      {t_all * 1e3:8.1f} ms = "
          f"{t_all / (50 * sessions) * 1e3:6.2f} ms/frame")  # fmt: skip
    print(f"  render (batch {engine.render_batch}), {render_frames} frames: "
          f"{per_frame_render * 1e3:8.1f} ms/frame")  # fmt: skip
    total = t_one / 50 + per_frame_render
    print(f"  total per frame (1 session): {total * 1e3:.1f} ms -> {1 / total:.2f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--conformance",
        type=Path,
        default=Path(os.environ.get("FACESTREAM_CONFORMANCE_DIR", DEFAULT_FIXTURES)),
    )
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--nfe", type=int, default=10)
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=4, help="frames rendered on CPU")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_checkpoint_folder(args.conformance, Path(tmp))
        run(ImTalkerEngine(folder, device="cpu"), args.sessions, args.nfe, args.cfg, args.frames)
        if torch.cuda.is_available():
            gpu = ImTalkerEngine(folder, device="cuda")
            run(gpu, args.sessions, args.nfe, args.cfg, 50)
        else:
            print("GPU path: no CUDA GPU available here, nothing measured")


if __name__ == "__main__":
    main()
