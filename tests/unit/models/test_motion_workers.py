"""Audio→motion in worker processes (models.engines.motion_workers): the same frames as in-process."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from models.engines.motion_workers import MotionWorkerError, MotionWorkerPool
from models.errors import InvalidAudioError
from models.motion.stream import MotionStream
from models.types import EngineParams


@pytest.fixture(scope="module")
def pool():
    p = MotionWorkerPool(2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def speech(sample_speech_path) -> np.ndarray:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    assert rate == 16_000
    return pcm[: 16_000 * 3]


def _frames(stream, pcm: np.ndarray, step: int) -> list:
    out = []
    for a in range(0, len(pcm), step):
        out += stream.push_audio(pcm[a : a + step])
    out += stream.flush()
    stream.close()
    return out


def test_worker_motion_equals_in_process_motion_for_any_chunking(pool, speech) -> None:
    params = EngineParams(seed=3)
    local = _frames(MotionStream(params), speech, 640)
    assert local and any(f.jaw_open > 0 for f in local)
    for step in (640, 1000, 16_000):
        assert _frames(pool.open(params), speech, step) == local


def test_streams_interleave_across_workers_and_start_where_told(pool, speech) -> None:
    params = EngineParams(seed=5)
    a, b = pool.open(params), pool.open(params, start_index=40)
    fa = a.push_audio(speech[:6400])
    fb = b.push_audio(speech[:6400])
    assert fa[0].index == 0 and fb[0].index == 40
    assert fa == MotionStream(params).push_audio(speech[:6400])
    a.close()
    b.close()
    b.close()  # idempotent


def test_errors_come_back_as_exceptions(pool) -> None:
    s = pool.open(EngineParams())
    with pytest.raises(InvalidAudioError):
        s.push_audio(np.zeros((2, 2), np.float32))  # checked before it leaves the process
    s.flush()
    with pytest.raises(MotionWorkerError, match="flushed"):
        s.push_audio(np.zeros(640, np.float32))
    s.close()


def test_a_dead_worker_fails_its_streams_and_is_replaced() -> None:
    p = MotionWorkerPool(1)
    try:
        s = p.open(EngineParams())
        p._workers[0].process.kill()
        p._workers[0].process.join(5)
        with pytest.raises(MotionWorkerError):
            s.push_audio(np.zeros(640, np.float32))
        s.close()
        fresh = p.open(EngineParams())
        assert fresh.push_audio(np.zeros(640 * 8, np.float32))
        fresh.close()
    finally:
        p.close()
