"""CpuEngine against the Engine / EngineStream contract, with real audio and real images."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from models.engines.base import Engine, EngineStream
from models.engines.cpu import CpuEngine
from models.errors import InvalidImageError, NoFaceFoundError
from models.render import FaceRenderer
from models.types import SAMPLES_PER_FRAME, Avatar, EngineParams, VideoFrame

SECONDS = 2.4


@pytest.fixture(scope="module")
def engine() -> CpuEngine:
    return CpuEngine()


@pytest.fixture(scope="module")
def params() -> EngineParams:
    return EngineParams(seed=7)


@pytest.fixture(scope="module")
def avatar(engine, params, sample_face_path) -> Avatar:
    return engine.prepare_bytes(sample_face_path.read_bytes(), params)


@pytest.fixture(scope="module")
def speech(sample_speech_path) -> np.ndarray:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    assert rate == 16_000
    return pcm[: int(SECONDS * rate)]


def _run(engine: CpuEngine, avatar: Avatar, params: EngineParams, pcm: np.ndarray, chunks: list[int]):
    stream = engine.open_stream(avatar, params)
    frames: list[VideoFrame] = []
    pos = 0
    for n in chunks:
        frames += stream.push_audio(pcm[pos : pos + n])
        pos += n
    frames += stream.push_audio(pcm[pos:])
    frames += stream.flush()
    stream.close()
    return frames


def test_protocols_and_prepare(engine, params, avatar, sample_face_path):
    assert isinstance(engine, Engine) and engine.name == "cpu"
    assert avatar.image.shape == (512, 512, 3) and avatar.size == (512, 512)
    assert avatar.landmarks.shape == (478, 3)
    assert isinstance(avatar.engine_data, FaceRenderer)
    rgb = np.asarray(Image.open(sample_face_path).convert("RGB"))
    from_array = engine.prepare(rgb, EngineParams(crop=False))
    assert from_array.size == (436, 512) and from_array.source_size == (512, 600)
    stream = engine.open_stream(avatar, params)
    assert isinstance(stream, EngineStream)
    assert 0 <= stream.lookahead_frames <= 5
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(RuntimeError):
        stream.push_audio(np.zeros(640, np.float32))


def test_typed_errors_from_prepare(engine, params):
    with pytest.raises(InvalidImageError):
        engine.prepare_bytes(b"definitely not an image", params)
    flat = np.full((300, 300, 3), 90, np.uint8)
    with pytest.raises(NoFaceFoundError):
        engine.prepare(flat, params)


def test_frames_are_consecutive_final_and_chunk_invariant(engine, params, avatar, speech):
    a = _run(engine, avatar, params, speech, [5000, 333, 12000, 640])
    b = _run(engine, avatar, params, speech, [1600] * 20)
    n_frames = -(-len(speech) // SAMPLES_PER_FRAME)
    assert [f.index for f in a] == list(range(n_frames))
    assert [f.index for f in b] == list(range(n_frames))
    for fa, fb in zip(a, b, strict=True):
        assert fa.image.shape == (512, 512, 3) and fa.image.dtype == np.uint8
        assert fa.motion == fb.motion
        np.testing.assert_array_equal(fa.image, fb.image)
    assert any(f.speech for f in a)
    openings = [f.motion.jaw_open for f in a]
    assert max(openings) > 0.3


def test_lookahead_bounds_latency(engine, params, avatar, speech):
    stream = engine.open_stream(avatar, params)
    k = 20
    frames = stream.push_audio(speech[: k * SAMPLES_PER_FRAME])
    assert len(frames) >= k - stream.lookahead_frames
    stream.close()


def test_silence_is_idle_animation_with_closed_mouth(engine, params, avatar):
    frames = _run(engine, avatar, params, np.zeros(16_000 * 6, np.float32), [16_000] * 5)
    assert len(frames) == 150
    assert not any(f.speech for f in frames)
    assert all(f.motion.jaw_open == 0.0 for f in frames)
    first = frames[0].image
    assert any(not np.array_equal(first, f.image) for f in frames[1:]), "idle frames should move"


def test_nfe_and_cfg_scale_are_accepted_and_unused(engine, avatar, speech):
    short = speech[:16_000]
    base = _run(engine, avatar, EngineParams(seed=3), short, [4000])
    other = _run(engine, avatar, EngineParams(seed=3, nfe=50, cfg_scale=7.5), short, [4000])
    for fa, fb in zip(base, other, strict=True):
        np.testing.assert_array_equal(fa.image, fb.image)


def test_streams_on_threads_share_one_engine(engine, params, avatar, speech):
    short = speech[:16_000]
    expected = _run(engine, avatar, params, short, [3200])
    results: dict[int, list[VideoFrame]] = {}
    errors: list[BaseException] = []

    def session(k: int) -> None:
        try:
            results[k] = _run(engine, avatar, params, short, [1000 + 700 * k])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(k,), name=f"session-{k}") for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for frames in results.values():
        assert len(frames) == len(expected)
        for fa, fb in zip(frames, expected, strict=True):
            np.testing.assert_array_equal(fa.image, fb.image)


def test_skipping_leaves_frames_out_without_changing_the_ones_rendered(engine, params, avatar, speech):
    """``SkipsFrames``: motion advances through skipped frames, so what is rendered is identical."""
    from models.engines.base import SkipsFrames

    full = _run(engine, avatar, params, speech, [6400] * 3)
    stream = engine.open_stream(avatar, params)
    assert isinstance(stream, SkipsFrames)
    asked: list[int] = []

    def skip(index: int) -> bool:
        asked.append(index)
        return index % 3 != 0

    kept: list[VideoFrame] = []
    for a in range(0, len(speech), 6400):
        kept += stream.push_audio_skipping(speech[a : a + 6400], skip)
    stream.close()
    assert asked == list(range(len(asked))) and len(asked) >= len(full) - stream.lookahead_frames - 1
    assert [f.index for f in kept] == [i for i in asked if i % 3 == 0]
    by_index = {f.index: f for f in full}
    for f in kept:
        assert np.array_equal(f.image, by_index[f.index].image) and f.speech == by_index[f.index].speech
