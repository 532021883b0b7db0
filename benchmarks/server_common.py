"""Shared by the server benchmarks: an in-process uvicorn on loopback and speech chunk helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from models.samples import SAMPLE_FACE, SAMPLE_SPEECH
from tests.support.servers import live_server

API = "/api/audio-driven/chunked"


running_server = live_server
"""The in-process loopback uvicorn the tests use (``tests.support.servers.live_server``)."""


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
