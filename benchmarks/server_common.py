"""Shared by the server benchmarks: an in-process uvicorn on loopback and speech chunk helpers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import uvicorn

from models.samples import SAMPLE_FACE, SAMPLE_SPEECH

API = "/api/audio-driven/chunked"


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-bench", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def face_bytes() -> bytes:
    return Path(SAMPLE_FACE).read_bytes()


def speech_pcm16(rate: int = 24000) -> np.ndarray:
    """The bundled sample speech as mono s16le samples at ``rate``."""
    pcm, sr = sf.read(SAMPLE_SPEECH, dtype="float32")
    return (np.clip(soxr.resample(pcm, sr, rate), -1, 1) * 32767).astype("<i2")


def percentiles(values: list[float] | np.ndarray, qs=(50, 95, 99)) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": float(np.percentile(v, q)) for q in qs} | {"max": float(v.max())}
