"""Hours-long timelines: the third minute costs what the first did, decoders restart and release."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from models.motion import MotionStream
from models.motion.recognizer import MAX_UTTERANCE_BLOCKS
from models.types import FPS, SAMPLES_PER_FRAME, EngineParams

SR = 16_000


@pytest.fixture(scope="module")
def minute(sample_speech_path) -> tuple[np.ndarray, slice]:
    """One minute of timeline; returns it and where its 25 s of pause-free speech lies."""
    speech, _ = sf.read(sample_speech_path, dtype="float32")
    blocks = speech[: len(speech) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME].reshape(-1, SAMPLES_PER_FRAME)
    voiced = blocks[np.sqrt((blocks.astype(np.float64) ** 2).mean(axis=1)) > 10 ** (-50 / 20)].ravel()
    continuous = np.tile(voiced, 4)[: 25 * SR]  # no pause long enough to end an utterance
    rng = np.random.default_rng(5)
    noise = (rng.standard_normal(4 * SR) * 10 ** (-60 / 20)).astype(np.float32)
    head = [speech, np.zeros(3 * SR, np.float32), 0.3 * speech, noise]
    start = sum(len(p) for p in head)
    audio = np.concatenate([*head, continuous])
    audio = np.concatenate([audio, np.zeros(60 * SR - len(audio), np.float32)])
    return audio, slice(start, start + len(continuous))


@pytest.mark.slow
def test_three_minutes_cost_and_memory_stay_flat(minute):
    audio, continuous = minute
    stream = MotionStream(EngineParams())
    push = 4 * SAMPLES_PER_FRAME  # 160 ms pushes
    cpu: list[float] = []
    jaw: list[float] = []
    per_minute: list[int] = []
    tracemalloc.start()
    try:
        for m in range(3):
            t0 = time.process_time()
            for pos in range(0, len(audio), push):
                jaw += [f.jaw_open for f in stream.push_audio(audio[pos : pos + push])]
            cpu.append(time.process_time() - t0)
            per_minute.append(stream.utterances - sum(per_minute))
            assert not stream.decoding  # the closing silence released the decoder
            if m == 0:
                mem_after_first, _ = tracemalloc.get_traced_memory()
        mem_after_third, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    jaw += [f.jaw_open for f in stream.flush()]
    assert len(jaw) == 3 * 60 * FPS
    assert cpu[2] <= 1.5 * cpu[0] + 0.2, cpu  # no growth with stream length
    assert mem_after_third - mem_after_first < 200_000
    # every minute: the same utterances, and 25 s of speech without pauses cut at the length bound
    assert per_minute[0] == per_minute[1] == per_minute[2]
    continuous_blocks = (continuous.stop - continuous.start) // SAMPLES_PER_FRAME
    # two per sample take (a >= 0.8 s pause splits it), one for the continuous speech, plus restarts
    assert per_minute[0] >= 5 + continuous_blocks // MAX_UTTERANCE_BLOCKS
    assert sum(cpu) / 180 < 0.15  # real-time factor, loose for a loaded CI box (benchmark: ~0.03)
    third = np.array(jaw[2 * 60 * FPS :])
    rms = np.sqrt((audio.astype(np.float64) ** 2).reshape(-1, SAMPLES_PER_FRAME).mean(axis=1))
    assert np.corrcoef(third, rms)[0, 1] > 0.7  # lip sync as good in minute three
