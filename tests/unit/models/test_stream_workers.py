"""CPU engine streams in worker processes (models.engines.stream_workers): the same pictures as
in-process, for any chunking, with skipping and rewind, and a dead worker fails loudly."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from models.engines.base import PinnedToWorker, Rewindable, SkipsFrames, StreamsLateFrames, WarmsWorkers
from models.engines.cpu import CpuEngine
from models.engines.skipping import RENDER_ESTIMATE_S, LatePolicy, TickDeadlines
from models.engines.stream_workers import EngineWorkerError
from models.errors import InvalidAudioError
from models.types import Avatar, EngineParams

PARAMS = EngineParams(seed=7)


@pytest.fixture(scope="module")
def engines():
    local, remote = CpuEngine(), CpuEngine(processes=2)
    yield local, remote
    remote.close()


@pytest.fixture(scope="module")
def avatar(engines, sample_face_path) -> Avatar:
    return engines[0].prepare_bytes(sample_face_path.read_bytes(), PARAMS)


@pytest.fixture(scope="module")
def speech(sample_speech_path) -> np.ndarray:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    assert rate == 16_000
    return pcm[: int(1.6 * rate)]


def _run(stream, pcm: np.ndarray, step: int) -> list:
    out = []
    for a in range(0, len(pcm), step):
        out += stream.push_audio(pcm[a : a + step])
    out += stream.flush()
    stream.close()
    return out


def _same(a: list, b: list, min_frames: int = 30) -> None:
    assert [f.index for f in a] == [f.index for f in b] and len(a) >= min_frames
    for x, y in zip(a, b, strict=True):
        assert x.speech == y.speech and x.motion == y.motion and np.array_equal(x.image, y.image)


def test_worker_streams_render_the_same_frames_for_any_chunking(engines, avatar, speech) -> None:
    local, remote = engines
    expected = _run(local.open_stream(avatar, PARAMS), speech, 640)
    assert len(remote.worker_pids) == 2
    for step in (640, 5000):
        stream = remote.open_stream(avatar, PARAMS)
        assert isinstance(stream, SkipsFrames) and isinstance(stream, Rewindable)
        _same(_run(stream, speech, step), expected)


def test_skipping_is_decided_in_the_caller_and_changes_no_picture(engines, avatar, speech) -> None:
    local, remote = engines
    expected = {f.index: f for f in _run(local.open_stream(avatar, PARAMS), speech, 640)}
    stream = remote.open_stream(avatar, PARAMS)
    asked: list[int] = []

    def skip(index: int) -> bool:
        asked.append(index)
        return index % 2 == 1

    kept = []
    for a in range(0, len(speech), 640):
        kept += stream.push_audio_skipping(speech[a : a + 640], skip)
    stream.close()
    assert asked == list(range(len(asked))) and len(asked) > 30
    assert [f.index for f in kept] == [i for i in asked if i % 2 == 0]
    for f in kept:
        assert np.array_equal(f.image, expected[f.index].image)


def test_deadlined_pushes_decide_in_the_worker_and_stream_each_frame(engines, avatar, speech) -> None:
    """``StreamsLateFrames``: frames due far ahead are all rendered (same pictures as in-process),
    arrive one by one on the calling thread, and the policy's state comes back updated; frames
    already past their deadline are skipped in the worker, while motion still advances."""
    local, remote = engines
    half = len(speech) // 2
    tail = np.zeros(6400, np.float32)
    reference = local.open_stream(avatar, PARAMS)  # the same audio, nothing skipped
    expected = {f.index: f for pcm in (speech[:half], speech[half:], tail) for f in reference.push_audio(pcm)}
    reference.close()
    stream = remote.open_stream(avatar, PARAMS)
    assert isinstance(stream, StreamsLateFrames) and isinstance(stream, PinnedToWorker)
    assert stream.worker_slot in (0, 1)
    got, threads = [], set()

    def emit(frame) -> None:
        got.append(frame)
        threads.add(threading.get_ident())

    future = TickDeadlines(time.monotonic() + 3600, 25)
    policy = stream.push_audio_deadlined(speech[:half], future, LatePolicy(), emit)
    assert policy.skipped == 0 and policy.estimate_s != RENDER_ESTIMATE_S  # measured in the worker
    assert threads == {threading.get_ident()} and len(got) > 5
    rendered = len(got)
    past = TickDeadlines(time.monotonic() - 3600, 25)
    policy = stream.push_audio_deadlined(speech[half:], past, policy, emit)
    assert len(got) == rendered and policy.skipped > 5  # too late: nothing rendered
    # motion went on through the skipped frames: the next frames are the in-process ones
    policy = stream.push_audio_deadlined(tail, future, policy, emit)
    stream.close()
    assert [f.index for f in got] == sorted(f.index for f in got) and len(got) > rendered
    for f in got:
        assert np.array_equal(f.image, expected[f.index].image)
    slots = remote._pool._workers[stream.worker_slot].slots
    # through shared memory, up to FRAME_SLOTS per request (the first has 20 frames: the rest were
    # pickled), and every picture the same as in-process either way (checked below)
    assert slots is not None and 0 < slots.taken < len(got)
    # the 20 late frames in a row also thinned the stream (every stride-th frame after that)
    assert policy.stride > 1 and policy.thinned > 0
    assert got[rendered].index == rendered + policy.skipped - policy.thinned


def test_rewind_and_errors_cross_the_process_boundary(engines, avatar, speech) -> None:
    local, remote = engines
    a, b = local.open_stream(avatar, PARAMS), remote.open_stream(avatar, PARAMS)
    for s in (a, b):
        s.push_audio(speech[:16_000])
        s.rewind(10)
    fa, fb = a.push_audio(np.zeros(6400, np.float32)), b.push_audio(np.zeros(6400, np.float32))
    assert fb and fb[0].index == 10
    _same(fa, fb, min_frames=1)
    with pytest.raises(InvalidAudioError):
        b.push_audio(np.zeros((2, 2), np.float32))  # checked before it leaves the process
    a.close()
    b.close()
    b.close()  # idempotent
    with pytest.raises(RuntimeError):
        b.push_audio(np.zeros(640, np.float32))


def test_a_dead_worker_fails_its_streams_and_is_replaced(avatar) -> None:
    engine = CpuEngine(processes=1)
    try:
        stream = engine.open_stream(avatar, PARAMS)
        worker = engine._pool._workers[0]
        worker.process.kill()
        worker.process.wait(5)
        with pytest.raises(EngineWorkerError):
            stream.push_audio(np.zeros(640, np.float32))
        stream.close()
        fresh = engine.open_stream(avatar, PARAMS)
        assert fresh.push_audio(np.zeros(640 * 8, np.float32))
        fresh.close()
    finally:
        engine.close()


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_warming_runs_speech_through_every_worker_and_leaves_no_stream(engines, avatar, speech) -> None:
    local, remote = engines
    assert isinstance(remote, WarmsWorkers)
    before = {pid: _cpu_ticks(pid) for pid in remote.worker_pids}
    remote.warm_workers(avatar, speech)
    after = {pid: _cpu_ticks(pid) for pid in remote.worker_pids}
    assert all(after[pid] > before[pid] for pid in before), (before, after)  # each one rendered
    assert [w.streams for w in remote._pool._workers] == [0, 0]
    local.warm_workers(avatar, speech)  # no workers: nothing to do
    expected = _run(local.open_stream(avatar, PARAMS), speech, 640)
    _same(_run(remote.open_stream(avatar, PARAMS), speech, 640), expected)  # warm, same pictures
