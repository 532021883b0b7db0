"""Lip-sync acceptance: the mouth users see opens with the voice and shuts in the pauses.

The CPU engine renders the bundled speech pushed in uneven chunks; MediaPipe re-detects the lips
on every rendered frame; the inner-lip gap (normalised by the inter-ocular distance) must track
the audio's per-frame RMS loudness (Pearson r ≥ 0.6) and be closed in ≥ 95 % of the frames
inside every pause of 300 ms or more.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from models.engines.cpu import CpuEngine
from models.face import FaceLandmarker
from models.face.landmarks import FaceBox
from models.face.measure import mouth_opening
from models.types import SAMPLES_PER_FRAME, EngineParams

CLOSED_GAP = 0.05  # inter-ocular distances; a resting mouth measures ~0.00-0.02
SILENCE_DB = -40.0  # frames this far below the loudest frame count as silence
MIN_PAUSE_FRAMES = 8  # 320 ms


def _silent_runs(silent: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, s in enumerate([*silent.tolist(), False]):
        if s and start is None:
            start = i
        elif not s and start is not None:
            if i - start >= MIN_PAUSE_FRAMES:
                runs.append((start, i))
            start = None
    return runs


@pytest.mark.slow
def test_rendered_mouth_follows_speech_loudness(sample_face_path, sample_speech_path):
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    assert rate == 16_000 and pcm.ndim == 1
    engine = CpuEngine()
    params = EngineParams()
    avatar = engine.prepare_bytes(sample_face_path.read_bytes(), params)
    stream = engine.open_stream(avatar, params)
    frames = []
    rng = np.random.default_rng(3)
    pos = 0
    while pos < len(pcm):
        n = int(rng.integers(1_000, 9_000))
        frames += stream.push_audio(pcm[pos : pos + n])
        pos += n
    frames += stream.flush()
    stream.close()
    n_frames = -(-len(pcm) // SAMPLES_PER_FRAME)
    assert [f.index for f in frames] == list(range(n_frames))

    landmarker = FaceLandmarker()
    lo = avatar.landmarks[:, :2].min(axis=0)
    hi = avatar.landmarks[:, :2].max(axis=0)
    box = FaceBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), 1.0)
    gaps = []
    for f in frames:
        lms = landmarker.mesh(f.image, box)
        assert lms is not None, f"face lost in frame {f.index}"
        gaps.append(mouth_opening(lms))
    gap = np.array(gaps)

    padded = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
    padded[: len(pcm)] = pcm
    rms = np.sqrt((padded.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(axis=1))
    r = float(np.corrcoef(gap, rms)[0, 1])

    db = 20 * np.log10(np.maximum(rms, 1e-9) / rms.max())
    pauses = _silent_runs(db < SILENCE_DB)
    assert pauses, "the sample speech should contain pauses"
    inside = np.concatenate([np.arange(a + 1, b - 1) for a, b in pauses])
    closed = float(np.mean(gap[inside] < CLOSED_GAP))
    commanded = np.array([f.motion.jaw_open for f in frames])
    r_motion = float(np.corrcoef(commanded, rms)[0, 1])
    r_render = float(np.corrcoef(commanded, gap)[0, 1])
    report = (
        f"r(gap, rms)={r:.3f}  closed-in-pauses={closed:.1%} over {len(inside)} frames  "
        f"[diagnosis: r(jaw_open, rms)={r_motion:.3f} (motion), r(jaw_open, gap)={r_render:.3f} (renderer)]"
    )
    print(report)
    assert r >= 0.6, report
    assert closed >= 0.95, report
