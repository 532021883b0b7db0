"""Barge-in support below the session: a motion stream started at frame k, the CPU stream's
``rewind``, and the timeline cut that rewinds the producer's cursor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from models.engines.cpu import CpuEngine
from models.motion.stream import MotionStream
from models.samples import SAMPLE_FACE, SAMPLE_SPEECH
from models.types import SAMPLES_PER_FRAME, EngineParams
from server.session.timeline import SpeechTimeline

SPF = SAMPLES_PER_FRAME


def _speech(frames: int) -> np.ndarray:
    pcm, _ = sf.read(str(SAMPLE_SPEECH), dtype="float32")
    return pcm[: frames * SPF]


def test_motion_stream_started_late_shows_the_same_idle_motion() -> None:
    params = EngineParams(seed=11)
    from_zero = MotionStream(params)
    late = MotionStream(params, start_index=130)
    full = {m.index: m for m in from_zero.push_audio(np.zeros(200 * SPF, np.float32))}
    part = late.push_audio(np.zeros(70 * SPF, np.float32))
    assert [m.index for m in part] == list(range(130, 130 + 70 - 5))  # lookahead 5 frames
    for m in part:
        assert dataclasses.astuple(m) == pytest.approx(dataclasses.astuple(full[m.index]))
    from_zero.close()
    late.close()
    with pytest.raises(ValueError):
        MotionStream(params, start_index=-1)


def test_cpu_stream_rewind_replaces_rendered_speech_with_idle() -> None:
    engine = CpuEngine()
    avatar = engine.prepare_bytes(SAMPLE_FACE.read_bytes(), EngineParams())
    stream = engine.open_stream(avatar, EngineParams())
    try:
        spoken = stream.push_audio(_speech(40))
        assert [f.index for f in spoken] == list(range(35))
        assert max(f.motion.jaw_open for f in spoken[20:35]) > 0.2  # speech was rendered there
        stream.rewind(20)  # the session drops frames >= 20 and pushes silence from there
        idle = stream.push_audio(np.zeros(20 * SPF, np.float32))
        assert [f.index for f in idle] == list(range(20, 35))
        assert all(f.motion.jaw_open == 0 and f.motion.speech == 0 and not f.speech for f in idle)
        assert not np.array_equal(idle[0].image, spoken[20].image)
        again = stream.push_audio(_speech(40))  # later speech animates as usual
        assert max(f.motion.jaw_open for f in again) > 0.2
    finally:
        stream.close()


def test_timeline_cut_before_consumed_rewinds_the_producer() -> None:
    tl = SpeechTimeline(lead_frames=10)
    tl.schedule(100 * SPF, playhead=0, n_out=100 * 1920)  # frames 10..110
    while tl.consumed < 30 * SPF:  # the engine listened up to frame 30 (silence, then speech)
        tl.consume(tl.next_block(30 * SPF - tl.consumed))
    dropped = tl.truncate(48_000, at=22 * SPF)
    assert tl.consumed == 22 * SPF
    assert dropped == (110 - 22) * SPF
    assert tl.runs[0].end_frame == 22 and not tl.runs[0].open
    assert tl.next_block(SPF).speech_offset is None  # silence from the cut on
    assert tl.schedule(SPF, playhead=15).start_frame == 25  # new speech: playhead + lead
    with pytest.raises(ValueError):
        tl.truncate(48_000, at=tl.consumed + 1)


def test_cut_after_final_ends_the_timeline_at_the_cut() -> None:
    tl = SpeechTimeline(lead_frames=10)
    tl.schedule(100 * SPF, playhead=0, n_out=100 * 1920)
    assert tl.finalize(playhead=0) == 110
    while tl.consumed < 20 * SPF:
        tl.consume(tl.next_block(20 * SPF - tl.consumed))
    tl.truncate(48_000, at=16 * SPF)
    assert tl.end_frame == 16  # no idle tail where the dropped speech was
