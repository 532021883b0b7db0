"""Admission from measurement: how many live sessions this machine holds, measured at start-up.

Why measure: a sessions-per-core constant is a guess about someone else's machine (and about the
engine, the preset and the face size); the one it replaced admitted a level at which faces froze.
At start-up (``max_sessions`` not set), ``measure`` runs the engine on the sample face and
speech for ``CALIBRATION_S`` of timeline on this thread (CPU time, so a busy neighbour inflates it
only a little; the engine's worker processes count too) and encodes those frames once with the
session encoder's x264 settings (the child's own rusage). A live session costs

    core/session = 25 × (engine + x264 CPU per frame) + SERVER_CORE_PER_SESSION + MUX_CORE_PER_SESSION

and ``max_sessions = floor(cores × UTILISATION / core/session)`` over the cores this process may
run on (``os.sched_getaffinity``), capped at ``MAX_PER_CORE`` per core.

``UTILISATION`` (``--admission-utilisation``) is the share of the cores the sessions may plan to
use: the rest is headroom for bursts (utterance starts, viewers joining, the event loop) and for
contention on the interpreter lock, without which frames start to miss their ticks well before
the cores are busy (issue 14).
The lead's idle-machine run of ``benchmarks/server_capacity.py --client process`` is what
confirms it; the derivation is logged at start-up so an operator can check it.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hls.ffmpeg_tools import ffmpeg_exe
from models.engines.base import Engine, WorkerProcesses
from models.samples import SAMPLE_FACE, sample_speech_pcm
from models.types import FPS, SAMPLES_PER_FRAME, EngineParams
from server.compute.avatar import prepare_avatar

log = logging.getLogger("facestream.capacity")

CALIBRATION_S = 2.0
"""Seconds of sample speech the calibration renders (~0.3 s of CPU for the CPU engine)."""
UTILISATION = 0.7
"""Share of the cores that admitted sessions may plan to use at their measured cost."""
SERVER_CORE_PER_SESSION = 0.05
"""The server process's own work per live session beside the engine: clock thread, I420
conversion, encoder pipes and the LL-HLS part splitter, speech decode/resample, frames from the
engine workers (benchmarks/server_capacity.py --client process, CPU split at 4 sessions: 0.049)."""
MUX_CORE_PER_SESSION = 0.02
"""The session ffmpeg's work beyond the video encode measured here: AAC audio and the (LL-)HLS
muxing (same benchmark: ffmpeg 0.072 core/session against 0.05 for x264 alone)."""
MAX_PER_CORE = 8
"""Ceiling for engines that cost next to nothing (test probes): beyond this the encoders and the
event loop, not the engine, are what run out."""


@dataclass(frozen=True, slots=True)
class CapacityEstimate:
    max_sessions: int
    cores: int
    engine_ms_per_frame: float
    encoder_ms_per_frame: float
    core_per_session: float
    utilisation: float = UTILISATION

    def derivation(self) -> str:
        return (
            f"max_sessions={self.max_sessions}: floor({self.cores} cores × {self.utilisation} / "
            f"{self.core_per_session:.3f} core per session), measured at start-up: engine "
            f"{self.engine_ms_per_frame:.2f} ms + encoder {self.encoder_ms_per_frame:.2f} ms CPU per frame "
            f"× {FPS} fps + server {SERVER_CORE_PER_SESSION} + audio/mux {MUX_CORE_PER_SESSION} core "
            f"(cap {MAX_PER_CORE}/core); "
            f"set --max-sessions to override"
        )


def estimate(
    cores: int, engine_s_per_frame: float, encoder_s_per_frame: float, utilisation: float = UTILISATION
) -> CapacityEstimate:
    """Pure: the admission limit from measured per-frame costs."""
    per_session = (
        FPS * (engine_s_per_frame + encoder_s_per_frame) + SERVER_CORE_PER_SESSION + MUX_CORE_PER_SESSION
    )
    limit = min(MAX_PER_CORE * cores, max(1, math.floor(cores * utilisation / per_session)))
    return CapacityEstimate(
        limit, cores, engine_s_per_frame * 1e3, encoder_s_per_frame * 1e3, per_session, utilisation
    )


def measure_engine(engine: Engine, seconds: float = CALIBRATION_S) -> tuple[float, list[np.ndarray]]:
    """CPU seconds per frame of ``engine`` on the sample face and speech, and the frames."""
    params = EngineParams()
    avatar = prepare_avatar(engine, Path(SAMPLE_FACE).read_bytes(), params)
    pcm = sample_speech_pcm(seconds)
    stream = engine.open_stream(avatar, params)  # (a worker answers once it is ready)
    workers = engine.worker_pids if isinstance(engine, WorkerProcesses) else []
    images: list[np.ndarray] = []
    try:
        start, start_workers = time.thread_time(), _cpu_of(workers)
        for a in range(0, len(pcm), SAMPLES_PER_FRAME):  # one frame per push, as the producer does
            images += [f.image for f in stream.push_audio(pcm[a : a + SAMPLES_PER_FRAME])]
        cpu = time.thread_time() - start + _cpu_of(workers) - start_workers
    finally:
        stream.close()
    return cpu / max(1, len(images)), images


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) of live processes ``pids`` so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure_encoder(images: list[np.ndarray], preset: str) -> float:
    """CPU seconds per frame of one session encoder (x264, ``preset``, zerolatency, CRF 23)."""
    if not images:
        return 0.0
    h, w = images[0].shape[:2]
    raw = b"".join(cv2.cvtColor(im, cv2.COLOR_RGB2YUV_I420).tobytes() for im in images)
    cmd = [
        ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}",
        "-r", str(FPS), "-i", "pipe:0", "-c:v", "libx264", "-preset", preset, "-tune", "zerolatency",
        "-crf", "23", "-threads", "1", "-f", "null", "-",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    try:
        proc.stdin.write(raw)
    finally:
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"calibration encode failed (ffmpeg exit {proc.returncode})")
    return (usage.ru_utime + usage.ru_stime) / len(images)


_CACHE: dict[tuple[str, str], tuple[float, float]] = {}


def calibrate(engine: Engine, preset: str, cores: int, utilisation: float = UTILISATION) -> CapacityEstimate:
    """Measure (once per process, engine and preset) and derive the admission limit. Blocking."""
    key = (type(engine).__qualname__ + ":" + engine.name, preset)
    if key not in _CACHE:
        engine_s, images = measure_engine(engine)
        _CACHE[key] = (engine_s, measure_encoder(images, preset))
    return estimate(cores, *_CACHE[key], utilisation)
