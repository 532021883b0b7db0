"""AvatarStream, the core of the agent integrations: speech in, one frame per tick out.

With ProbeEngine (barcoded frames, lookahead 3) and, for barge-in, the real CPU engine (which can
rewind). Audio is checked sample for sample: what the frames carry is exactly what was pushed.
"""

from __future__ import annotations

import numpy as np
import pytest

from facestream.avatar import STALE_TICKS, AvatarStream
from models.types import EngineParams
from tests.support.engines import ProbeEngine

RATE = 24_000
PER_FRAME = RATE // 25


def _stream(lookahead: int = 3, cushion_ms: float = 40.0) -> AvatarStream:
    engine = ProbeEngine(size=128, lookahead=lookahead)
    avatar = engine.prepare(np.zeros((128, 128, 3), np.uint8), EngineParams())
    return AvatarStream(engine.open_stream(avatar, EngineParams()), RATE, cushion_ms)


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.5, 0.5, int(seconds * RATE)) * 32767).astype(np.int16)


def test_frames_carry_exactly_the_pushed_audio_in_order():
    s = _stream()
    idle = [s.tick() for _ in range(4)]
    assert all(f.audio is None for f in idle)
    pcm = _speech(1.01)  # not a whole number of frames
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.integers(0, len(pcm), 6))
    for part in np.split(pcm, cuts):
        s.push_audio(part, RATE)
    s.end_segment()
    frames = [s.tick() for _ in range(40)]
    speech = [f for f in frames if f.audio is not None]
    assert len(speech) == -(-len(pcm) // PER_FRAME)  # 26 frames for 1.01 s
    assert [f.index for f in frames] == list(range(4, 44))
    assert frames.index(speech[0]) == s.lookahead  # on screen lookahead ticks after the push
    played = np.concatenate([f.audio for f in speech])
    np.testing.assert_array_equal(played[: len(pcm)], pcm)
    assert not played[len(pcm) :].any()  # the last frame is padded with silence
    assert [f.segment_end for f in speech] == [False] * (len(speech) - 1) + [True]
    assert all(f.sample_rate == RATE and len(f.audio) == PER_FRAME for f in speech)


def test_other_input_rates_are_resampled_to_the_output_rate():
    s = _stream()
    pcm16k = (np.sin(np.arange(16_000) / 16_000 * 2 * np.pi * 220) * 16000).astype(np.int16)
    s.push_audio(pcm16k, 16_000)
    s.end_segment()
    speech = [f for f in (s.tick() for _ in range(40)) if f.audio is not None]
    assert len(speech) == 25
    played = np.concatenate([f.audio for f in speech]).astype(np.float64)
    ref = np.sin(np.arange(RATE) / RATE * 2 * np.pi * 220) * 16000
    assert np.corrcoef(played[200:-200], ref[200:-200])[0, 1] > 0.99


def test_an_utterance_waits_for_its_cushion_and_a_stalled_tail_still_plays():
    s = _stream(cushion_ms=40.0)
    s.push_audio(_speech(0.05), RATE)  # 1.25 frames: below 1 frame + 40 ms, no end_segment
    frames = [s.tick() for _ in range(STALE_TICKS + s.lookahead + 3)]
    speech = [f for f in frames if f.audio is not None]
    assert len(speech) == 2  # it waited STALE_TICKS, then played whole + padded partial frame
    assert frames.index(speech[0]) == STALE_TICKS - 1 + s.lookahead


def test_clear_drops_unplayed_speech_and_segment_end():
    s = _stream()
    s.push_audio(_speech(2.0), RATE)
    s.end_segment()
    [s.tick() for _ in range(10)]
    dropped = s.clear()
    assert dropped == pytest.approx(2.0 - (10 - s.lookahead) * 0.04, abs=0.05)
    after = [s.tick() for _ in range(60)]
    assert not any(f.audio is not None or f.segment_end for f in after)


@pytest.mark.slow
def test_clear_on_a_rewindable_engine_makes_the_next_frame_idle(sample_face_path):
    from models.engines.cpu import CpuEngine

    engine = CpuEngine()
    avatar = engine.prepare_bytes(sample_face_path.read_bytes(), EngineParams())
    s = AvatarStream(engine.open_stream(avatar, EngineParams()), RATE)
    import soundfile as sf

    pcm, rate = sf.read(sample_face_path.parent / "sample_speech.wav", dtype="float32")
    s.push_audio(pcm[: 2 * rate], rate)
    frames = [s.tick() for _ in range(30)]
    assert sum(f.speech for f in frames) > 10
    s.clear()
    nxt = [s.tick() for _ in range(10)]
    assert all(f.audio is None and not f.speech for f in nxt)
    assert max(f.jaw_open for f in nxt) < 0.05  # the rewound motion starts at rest
    assert [f.index for f in nxt] == list(range(30, 40))
