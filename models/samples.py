"""Bundled sample inputs so that the default run works with nothing supplied.

sample_face.jpg is Grace Hopper's public-domain portrait (as shipped by matplotlib's sample data);
sample_speech.wav was synthesized here with espeak-ng (16 kHz mono, ~11 s, with pauses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from models.types import ENGINE_SAMPLE_RATE

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
SAMPLE_FACE = ASSETS_DIR / "sample_face.jpg"
SAMPLE_SPEECH = ASSETS_DIR / "sample_speech.wav"


def sample_speech_pcm(seconds: float) -> np.ndarray:
    """The first ``seconds`` of the sample speech, mono float32 at the engine's rate (start-up's
    warm-up and admission calibration both feed it straight to an engine stream)."""
    pcm, rate = sf.read(SAMPLE_SPEECH, dtype="float32", always_2d=True)
    if rate != ENGINE_SAMPLE_RATE:
        raise RuntimeError(f"sample speech is {rate} Hz, expected {ENGINE_SAMPLE_RATE}")
    return pcm.mean(axis=1)[: int(seconds * ENGINE_SAMPLE_RATE)]
