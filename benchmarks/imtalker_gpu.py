"""IMTalker on one device, measured: frames/s for one session and for N sessions batched,
first-frame latency after init, memory per session, p99 window latency.

Why: the neural engine matches the reference numerics but its speed on a GPU was never
measured, so admission (how many live sessions one GPU carries) had no basis. This prints
measured figures only; anything it cannot measure on the device it runs on is printed as
"n/a" with the reason, never estimated.

What runs: the engine exactly as the server runs it (``ImTalkerEngine``: checkpoint loading,
MediaPipe portrait prep, ``push_audio`` / ``push_audio_many``, uint8 frames back on the host),
at the real size (architecture and tensor shapes of the published checkpoints, 512 px) with
weights generated from the conformance manifests (``testing_weights.py``; same FLOPs and memory
as the real checkpoints), or with real checkpoints via ``--weights-dir``. ``--tiny`` uses the
tiny size (same topology, 1/8 widths, 128 px) so it finishes on a CPU in well under a minute;
its figures say nothing about the real model's speed.

Figures:
  * single-session frames/s: one stream, ``--windows`` consecutive 2 s windows (motion +
    rendering + copy to host), frames / wall time; with the motion/render split.
  * batched frames/s at N sessions: N streams, each round one window per stream through
    ``push_audio_many`` (one batched motion call, then each session's frames rendered).
    A session is real-time when a round (2 s of video for every session) takes < 2 s.
  * first-frame latency: a warm engine, a new session: ``prepare`` (face detection, crop,
    portrait encode) + the first window (its frames final), for the 2 s first window and for
    the short first window (``--first-window-frames``); plus, when speech starts at init and
    arrives in real time, the audio that window must wait for.
  * VRAM per session: CUDA peak allocated during the batched rounds above the weights'
    allocation, / N (``torch.cuda.max_memory_allocated``); "n/a on CPU" elsewhere. The
    per-session persistent state (portrait encoding + context) is exact on every device.
  * p99 window latency: over every window (single) and every round (batched) measured.

CPU, tiny (the test runs this):
    .venv/bin/python benchmarks/imtalker_gpu.py --tiny --device cpu --threads 1

GPU machine, one prepared script (real size, ~10 min on one GPU; prints everything):
    export FACESTREAM_CONFORMANCE_DIR=/path/to/conformance/imtalker W=/tmp/imtalker_weights
    for d in fp32 bf16 fp16; do
      .venv/bin/python benchmarks/imtalker_gpu.py --device cuda --dtype $d --sessions 1,4,8,16 \\
        --weights-dir $W || exit 1
    done
    .venv/bin/python benchmarks/imtalker_gpu.py --device cuda --dtype bf16 --compile reduce-overhead \\
      --sessions 1,4,8,16 --weights-dir $W
(The first run writes the generated real-size checkpoints into $W; the others reuse them.)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.imtalker.checkpoints import missing_weight_files
from models.imtalker.engine import ImTalkerEngine, ImTalkerStream
from models.imtalker.flow_transformer import CONTEXT_FRAMES, WINDOW_FRAMES
from models.imtalker.motion_stream import WINDOW_SAMPLES
from models.imtalker.renderer import PortraitEncoding
from models.imtalker.sizes import REAL, TINY, ImTalkerSize
from models.imtalker.testing_weights import write_checkpoint_folder
from models.samples import SAMPLE_FACE, SAMPLE_SPEECH
from models.types import FPS, SAMPLES_PER_FRAME, EngineParams

DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "imtalker"
WINDOW_SECONDS = WINDOW_FRAMES / FPS


class Timer:
    """Wall time of calls to one engine method, synchronising CUDA so the GPU work is counted."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.total = 0.0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.sync()
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            self.sync()
            self.total += time.perf_counter() - start
            return result

        return timed


def speech_audio(samples: int) -> np.ndarray:
    """The bundled 16 kHz speech sample, tiled to ``samples`` (float32 in [-1, 1])."""
    with wave.open(str(SAMPLE_SPEECH), "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    return np.resize(pcm, samples).astype(np.float32)


def face_image() -> np.ndarray:
    bgr = cv2.imread(str(SAMPLE_FACE))
    if bgr is None:
        raise SystemExit(f"cannot read {SAMPLE_FACE}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else math.nan


def state_bytes(portrait: PortraitEncoding, stream: ImTalkerStream) -> int:
    tensors = [*portrait.appearance, portrait.identity, portrait.motion_code, *portrait.reference_maps]
    context = stream.context
    tensors += [context.prev_x, context.prev_a, context.prev_pose, context.prev_cam, context.prev_gaze]
    return sum(t.numel() * t.element_size() for t in tensors)


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path, size: ImTalkerSize) -> None:
        self.args = args
        self.folder = folder
        self.size = size
        self.device = torch.device(args.device)
        self.params = EngineParams(seed=42, nfe=args.nfe, cfg_scale=args.cfg)
        self.motion = Timer(self.device)
        self.render = Timer(self.device)

    def engine(self, first_window_frames: int = WINDOW_FRAMES) -> ImTalkerEngine:
        engine = ImTalkerEngine(
            self.folder,
            device=self.args.device,
            render_batch=self.args.render_batch,
            dtype=self.args.dtype,
            compile_mode=self.args.compile,
            first_window_frames=first_window_frames,
            size=self.size,
        )
        engine.sample_windows = self.motion.wrap(engine.sample_windows)  # type: ignore[method-assign]
        engine.render_frames = self.render.wrap(engine.render_frames)  # type: ignore[method-assign]
        return engine

    def first_frame(
        self, engine: ImTalkerEngine, image: np.ndarray, audio: np.ndarray
    ) -> tuple[float, float]:
        """(prepare s, first window s) for a new session on a warm engine."""
        self.motion.sync()
        start = time.perf_counter()
        avatar = engine.prepare(image, self.params)
        self.motion.sync()
        prepared = time.perf_counter()
        stream = engine.open_stream(avatar, self.params)
        frames = stream.push_audio(audio[: engine.first_window_frames * SAMPLES_PER_FRAME])
        done = time.perf_counter()
        assert frames and frames[0].index == 0, "the first window returned no frames"
        return prepared - start, done - prepared

    def rounds(
        self, engine: ImTalkerEngine, portraits: list[PortraitEncoding], audio: np.ndarray, windows: int
    ) -> tuple[list[float], list[ImTalkerStream], float, float]:
        """Round latencies; every round pushes one 2 s window to every stream (batched)."""
        streams = [ImTalkerStream(engine, p, self.params) for p in portraits]
        latencies = []
        self.motion.total = self.render.total = 0.0
        for w in range(windows):
            piece = audio[w * WINDOW_SAMPLES : (w + 1) * WINDOW_SAMPLES]
            self.motion.sync()
            start = time.perf_counter()
            out = engine.push_audio_many(streams, [piece] * len(streams))
            latencies.append(time.perf_counter() - start)
            assert all(len(frames) == WINDOW_FRAMES for frames in out)
        return latencies, streams, self.motion.total, self.render.total


def ensure_weights(args: argparse.Namespace, size: ImTalkerSize, scratch: Path) -> tuple[Path, str]:
    if args.weights_dir is not None:
        folder = Path(args.weights_dir)
        if not missing_weight_files(folder):
            return folder, f"checkpoints in {folder}"
        if folder.exists() and any(folder.iterdir()):
            raise SystemExit(
                f"{folder} is incomplete ({', '.join(missing_weight_files(folder))}) and not empty"
            )
    else:
        folder = scratch
    start = time.perf_counter()
    write_checkpoint_folder(Path(args.conformance), folder, size)
    return folder, f"generated {size.name}-size weights ({time.perf_counter() - start:.1f} s to write)"


def run(args: argparse.Namespace) -> None:
    size = TINY if args.tiny else REAL
    if args.threads:
        torch.set_num_threads(args.threads)
    sessions = sorted({int(s) for s in str(args.sessions).split(",")})
    windows = args.windows
    with tempfile.TemporaryDirectory() as scratch:
        folder, source = ensure_weights(args, size, Path(scratch))
        bench = Bench(args, folder, size)
        device = bench.device
        print(f"IMTalker benchmark: size {size.name} ({size.render_size} px), {source}")
        print(
            f"device {device}"
            + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
            + f", dtype {args.dtype}, compile {args.compile or 'off'}, nfe {args.nfe}, cfg {args.cfg}, "
            f"render batch {args.render_batch or 'default'}, torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}"
        )
        audio = speech_audio((windows + 1) * WINDOW_SAMPLES)
        image = face_image()

        start = time.perf_counter()
        engine = bench.engine()
        load_s = time.perf_counter() - start
        weights_bytes = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        cold_prepare, cold_window = bench.first_frame(engine, image, audio)  # also warms everything up
        print(f"engine load: {load_s:.2f} s; cold first session: prepare {cold_prepare * 1e3:.0f} ms, "
              f"first window {cold_window * 1e3:.0f} ms (includes lazy init / compilation)")  # fmt: skip

        first_frames = sorted({WINDOW_FRAMES, args.first_window_frames}, reverse=True)  # before, after
        for frames in first_frames:
            target = engine if frames == WINDOW_FRAMES else bench.engine(frames)
            if target is not engine:
                bench.first_frame(target, image, audio)  # warm this engine too
            runs = [bench.first_frame(target, image, audio) for _ in range(args.first_frame_repeats)]
            prepare = float(np.median([r[0] for r in runs]))
            window = float(np.median([r[1] for r in runs]))
            label = "2 s first window" if frames == WINDOW_FRAMES else f"{frames}-frame first window"
            print(
                f"first-frame latency ({label}): {(prepare + window) * 1e3:.0f} ms "
                f"= prepare {prepare * 1e3:.0f} ms + first window {window * 1e3:.0f} ms "
                f"(median of {len(runs)}); with speech arriving in real time from init: "
                f"{(prepare + window + frames / FPS) * 1e3:.0f} ms"
            )

        portrait = engine.encode_portrait(cv2.resize(image, (512, 512)))
        latencies, streams, motion_s, render_s = bench.rounds(engine, [portrait], audio, windows)
        total = sum(latencies)
        single_fps = WINDOW_FRAMES * windows / total
        print(
            f"single-session frames/s: {single_fps:.2f} ({windows} windows of {WINDOW_FRAMES} frames; "
            f"per window: motion {motion_s / windows * 1e3:.0f} ms, "
            f"render {render_s / windows * 1e3:.0f} ms, total {total / windows * 1e3:.0f} ms; "
            f"real time needs < {WINDOW_SECONDS * 1e3:.0f} ms)"
        )
        print(
            f"p99 window latency (1 session): {percentile(latencies, 99) * 1e3:.0f} ms "
            f"over {len(latencies)} windows"
        )
        print(
            "per-session state (portrait encoding + context): "
            f"{state_bytes(portrait, streams[0]) / 2**20:.2f} MiB"
        )

        real_time: list[int] = []
        for count in sessions:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            portraits = [portrait] * count
            latencies, _, motion_s, render_s = bench.rounds(engine, portraits, audio, windows)
            fps = WINDOW_FRAMES * count * windows / sum(latencies)
            p99 = percentile(latencies, 99)
            print(
                f"batched frames/s at {count} sessions: {fps:.2f} total, {fps / count:.2f} per session "
                f"(per round: motion {motion_s / windows * 1e3:.0f} ms, "
                f"render {render_s / windows * 1e3:.0f} ms); "
                f"p99 round latency {p99 * 1e3:.0f} ms over {len(latencies)} rounds"
            )
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device)
                print(
                    f"VRAM per session at {count} sessions: {(peak - weights_bytes) / count / 2**20:.1f} MiB "
                    f"(peak {peak / 2**20:.0f} MiB, weights {weights_bytes / 2**20:.0f} MiB)"
                )
            else:
                print(f"VRAM per session at {count} sessions: n/a on CPU")
            if p99 < WINDOW_SECONDS:
                real_time.append(count)
        if real_time:
            print(
                f"real-time sessions (p99 round < {WINDOW_SECONDS:.0f} s): "
                f"up to {max(real_time)} of {sessions} measured"
            )
        else:
            print(f"real-time sessions (p99 round < {WINDOW_SECONDS:.0f} s): none of {sessions} measured")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        help="torch.compile the renderer (default|reduce-overhead|max-autotune)")  # fmt: skip
    parser.add_argument("--sessions", default=None, help="batched session counts, e.g. 4 or 1,4,8,16 "
                        "(default 4; 2 with --tiny)")  # fmt: skip
    parser.add_argument(
        "--tiny", action="store_true", help="tiny size (CPU-fast; not the real model's speed)"
    )
    parser.add_argument("--nfe", type=int, default=10)
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--windows", type=int, default=None,
                        help="2 s windows timed per measurement (default 3; 2 with --tiny)")  # fmt: skip
    parser.add_argument("--first-window-frames", type=int, default=CONTEXT_FRAMES,
                        help="short first window to compare with the 2 s one (10..50 frames)")  # fmt: skip
    parser.add_argument("--first-frame-repeats", type=int, default=None, help="default 3; 2 with --tiny")
    parser.add_argument("--render-batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="checkpoint folder; an absent or empty one gets generated weights")  # fmt: skip
    parser.add_argument(
        "--conformance",
        type=Path,
        default=Path(os.environ.get("FACESTREAM_CONFORMANCE_DIR", DEFAULT_FIXTURES)),
        help="conformance folder whose manifests the generated weights come from",
    )
    args = parser.parse_args(argv)
    small = args.tiny
    args.sessions = args.sessions or ("2" if small else "4")
    args.windows = args.windows or (2 if small else 3)
    args.first_frame_repeats = args.first_frame_repeats or (2 if small else 3)
    if not CONTEXT_FRAMES <= args.first_window_frames <= WINDOW_FRAMES:
        parser.error(f"--first-window-frames must be in [{CONTEXT_FRAMES}, {WINDOW_FRAMES}]")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    run(args)


if __name__ == "__main__":
    main()
