"""MotionStream's streaming contract: chunk invariance, lookahead, flush, determinism, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import InvalidAudioError
from models.motion import MotionStream
from models.types import SAMPLES_PER_FRAME, EngineParams, MotionFrame

SR = 16_000


@pytest.fixture(scope="module")
def timeline(sample_speech_path) -> np.ndarray:
    """Speech, digital silence, a noise bed and a quieter second take: what a session timeline holds."""
    speech, sr = sf.read(sample_speech_path, dtype="float32")
    assert sr == SR
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(int(1.3 * SR)) * 10 ** (-62 / 20)).astype(np.float32)
    parts = [np.zeros(int(0.5 * SR), np.float32), speech, noise, 0.1 * speech, np.zeros(11_113, np.float32)]
    return np.concatenate(parts)


def run(audio: np.ndarray, chunks: list[int] | None = None, params: EngineParams | None = None):
    stream = MotionStream(params or EngineParams())
    frames: list[MotionFrame] = []
    if chunks is None:
        frames += stream.push_audio(audio)
    else:
        pos = 0
        for size in chunks:
            frames += stream.push_audio(audio[pos : pos + size])
            pos += size
        assert pos >= len(audio)
    frames += stream.flush()
    stream.close()
    return frames


def as_matrix(frames: list[MotionFrame]) -> np.ndarray:
    return np.array([dataclasses.astuple(f) for f in frames], dtype=np.float64)


@pytest.fixture(scope="module")
def reference(timeline) -> np.ndarray:
    return as_matrix(run(timeline))


def random_chunks(total: int, seed: int) -> list[int]:
    """10 ms .. 10 s pushes, log-uniform, odd sizes, plus occasional empty and tiny pushes."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        r = rng.random()
        if r < 0.05:
            sizes.append(0)
        elif r < 0.12:
            sizes.append(int(rng.integers(1, 8)))
        else:
            sizes.append(int(np.exp(rng.uniform(np.log(160), np.log(160_000)))) | 1)
    return sizes


@pytest.mark.parametrize("seed", [1, 2])
def test_any_chunking_yields_identical_frames(timeline, reference, seed):
    frames = as_matrix(run(timeline, random_chunks(len(timeline), seed)))
    assert frames.shape == reference.shape
    np.testing.assert_allclose(frames, reference, atol=1e-6, rtol=0)


def test_frame_count_indices_and_speech_present(timeline, reference):
    assert len(reference) == -(-len(timeline) // SAMPLES_PER_FRAME)
    assert (reference[:, 0] == np.arange(len(reference))).all()
    assert reference[:, 1].max() > 0.5  # the speech opened the mouth


def test_frame_is_returned_once_its_lookahead_is_pushed(timeline):
    stream = MotionStream(EngineParams())
    look = stream.lookahead_frames
    assert 0 <= look <= 5
    n = 40
    needed = (n + 1 + look) * SAMPLES_PER_FRAME
    got = stream.push_audio(timeline[: needed - 1])
    assert [f.index for f in got] == list(range(n))
    got = stream.push_audio(timeline[needed - 1 : needed])
    assert [f.index for f in got] == [n]
    assert stream.push_audio(np.zeros(0, np.float32)) == []


def test_flush_completes_stream_once(timeline):
    stream = MotionStream(EngineParams())
    head = stream.push_audio(timeline[:12_345])
    tail = stream.flush()
    assert [f.index for f in head + tail] == list(range(-(-12_345 // SAMPLES_PER_FRAME)))
    assert stream.flush() == []
    with pytest.raises(RuntimeError):
        stream.push_audio(timeline[:640])


def test_same_params_are_deterministic(timeline, reference):
    np.testing.assert_array_equal(as_matrix(run(timeline)), reference)


@pytest.mark.parametrize(
    "bad",
    [
        np.array([0.0, np.nan], np.float32),
        np.array([np.inf, 0.0], np.float32),
        np.zeros((640, 2), np.float32),
        np.zeros((1, 640), np.float32),
        np.zeros(640, np.int16),
        [0.0] * 640,
    ],
    ids=["nan", "inf", "stereo", "row", "int16", "list"],
)
def test_bad_audio_is_rejected_without_corrupting_state(timeline, bad):
    audio = timeline[:60_000]
    stream = MotionStream(EngineParams())
    frames = stream.push_audio(audio[:20_000])
    with pytest.raises(InvalidAudioError):
        stream.push_audio(bad)
    frames += stream.push_audio(audio[20_000:]) + stream.flush()
    np.testing.assert_array_equal(as_matrix(frames), as_matrix(run(audio)))


def test_empty_stream_and_float64_input():
    assert MotionStream(EngineParams()).flush() == []
    stream = MotionStream(EngineParams())
    assert stream.push_audio(np.zeros(0, np.float64)) == []
    frames = stream.push_audio(np.zeros(6_400, np.float64)) + stream.flush()
    assert [f.index for f in frames] == list(range(10))


def test_out_of_range_samples_are_clipped_not_fatal():
    frames = run(np.full(8_000, 3.0, np.float32))
    assert len(frames) == 13
    assert all(0.0 <= f.jaw_open <= 1.0 for f in frames)


def test_interleaved_streams_share_decoders_without_leaking_state(timeline, reference):
    """Sessions hand pooled decoders to each other between utterances; outputs must not notice."""
    quiet = 0.3 * timeline[::-1].copy()
    solo_quiet = as_matrix(run(quiet))
    a, b = MotionStream(EngineParams()), MotionStream(EngineParams(seed=5))
    frames_a: list[MotionFrame] = []
    frames_b: list[MotionFrame] = []
    step = 3_331
    for pos in range(0, len(timeline), step):
        frames_a += a.push_audio(timeline[pos : pos + step])
        frames_b += b.push_audio(quiet[pos : pos + step])
    frames_a += a.flush()
    frames_b += b.flush()
    np.testing.assert_array_equal(as_matrix(frames_a), reference)
    mouth = slice(1, 5)  # seeds differ, so compare the speech-driven columns
    np.testing.assert_array_equal(as_matrix(frames_b)[:, mouth], solo_quiet[:, mouth])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=40))
def test_chunk_invariance_property(timeline, sizes):
    audio = timeline[8_000:72_000]  # 4 s across the onset of speech
    if sum(sizes) < len(audio):
        sizes = [*sizes, len(audio) - sum(sizes)]
    expected = _short_reference(audio.tobytes())
    np.testing.assert_allclose(as_matrix(run(audio, sizes)), expected, atol=1e-6, rtol=0)


_REFERENCES: dict[bytes, np.ndarray] = {}


def _short_reference(key: bytes) -> np.ndarray:
    if key not in _REFERENCES:
        _REFERENCES[key] = as_matrix(run(np.frombuffer(key, np.float32)))
    return _REFERENCES[key]
