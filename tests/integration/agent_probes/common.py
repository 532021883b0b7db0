"""Shared by the agent-side probes: the synthetic TTS voice and the mouth re-measurement.

These probes run in .venv-agent (Pipecat / LiveKit next to facestream, protobuf 6): the tests in
tests/integration spawn them and assert on the JSON they print.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

from models.face import FaceLandmarker
from models.face.measure import mouth_opening
from models.samples import SAMPLE_FACE, SAMPLE_SPEECH

TTS_RATE = 24_000  # what common TTS engines emit


def tts_voice(seconds: float, offset_s: float = 0.0) -> np.ndarray:
    """``seconds`` of the bundled speech at 24 kHz int16, as a TTS would stream it."""
    pcm, rate = sf.read(SAMPLE_SPEECH, dtype="float32")
    cut = pcm[int(offset_s * rate) : int((offset_s + seconds) * rate)]
    return (soxr.resample(cut, rate, TTS_RATE) * 32767).astype(np.int16)


class MouthMeter:
    """Re-detects the face mesh on delivered RGB frames and returns the inner-lip gap."""

    def __init__(self) -> None:
        self._landmarker = FaceLandmarker()
        self._box = None

    def __call__(self, rgb: np.ndarray) -> float:
        if self._box is None:
            boxes = self._landmarker.detect(rgb)
            if not boxes:
                return float("nan")
            self._box = boxes[0]
        lms = self._landmarker.mesh(rgb, self._box)
        return float("nan") if lms is None else mouth_opening(lms)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768.0) ** 2))) if len(pcm) else 0.0


__all__ = ["SAMPLE_FACE", "TTS_RATE", "MouthMeter", "rms", "tts_voice"]
