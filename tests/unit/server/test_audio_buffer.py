"""AudioChunkBuffer windows/overlap/bounds, OutputAudioBuffer, and the SpeechSchedule that joins them."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from server.errors import SpeechQueueFullError
from server.session.audio.chunk_buffer import AudioChunkBuffer
from server.session.audio.decode import DecodedAudio
from server.session.audio.output_buffer import OutputAudioBuffer
from server.session.speech import SpeechSchedule
from server.session.timeline import SPF, frame_bounds


def test_windows_release_new_audio_once_with_overlap_as_context() -> None:
    buf = AudioChunkBuffer(window_samples=1000, max_pending_samples=10_000, overlap=0.2)
    data = np.arange(3500, dtype=np.float32)
    buf.append(data[:1200])
    buf.append(data[1200:])
    windows = []
    while (w := buf.take()) is not None:
        windows.append(w)
    assert [len(w.pcm) for w in windows] == [1000, 1000, 1000, 500]
    assert np.array_equal(np.concatenate([w.pcm for w in windows]), data)  # never duplicated
    assert len(windows[0].context) == 0
    for prev, w in itertools.pairwise(windows):
        assert np.array_equal(w.context, prev.pcm[-200:])  # 20 % of a window, already released


def test_partial_window_when_the_timeline_needs_audio_sooner() -> None:
    buf = AudioChunkBuffer(1000, 10_000)
    buf.append(np.ones(300, np.float32))
    w = buf.take()
    assert w is not None and len(w.pcm) == 300
    buf.append(np.ones(2000, np.float32))
    assert len(buf.take(max_samples=150).pcm) == 150


def test_bound_refuses_whole_chunks_with_retry_after_and_drops_nothing() -> None:
    buf = AudioChunkBuffer(1600, max_pending_samples=16000)
    buf.append(np.ones(15000, np.float32))
    with pytest.raises(SpeechQueueFullError) as err:
        buf.check_room(3200)
    assert err.value.retry_after >= 1 and buf.pending == 15000
    buf.take()
    buf.check_room(2000)  # room again after a window was released


def test_buffer_is_thread_safe_under_concurrent_append_and_take() -> None:
    buf = AudioChunkBuffer(700, 10**7)
    got: list[np.ndarray] = []
    n_chunks = 400

    def produce() -> None:
        for i in range(n_chunks):
            buf.append(np.full(333, i, np.float32))

    t = threading.Thread(target=produce)
    t.start()
    while t.is_alive() or buf.pending:
        w = buf.take()
        if w is not None:
            got.append(w.pcm)
    t.join()
    out = np.concatenate(got)
    assert len(out) == 333 * n_chunks and np.all(np.diff(out) >= 0)


def test_output_buffer_reads_positions_and_discards() -> None:
    ob = OutputAudioBuffer(48000)
    ob.append(np.full(100, 0.5, np.float32))
    ob.append(np.full(100, -0.5, np.float32))
    dst = np.zeros(50, np.int16)
    ob.read_into(dst, 0, 75, 50)
    assert dst[0] > 0 and dst[-1] < 0 and (dst[:25] == dst[0]).all()
    ob.discard_before(150)
    dst2 = np.zeros(10, np.int16)
    ob.read_into(dst2, 0, 140, 10)
    assert (dst2 == 0).all()  # forgotten: silence, never stale audio
    ob.read_into(dst2, 0, 190, 10)
    assert (dst2 < 0).all()


def _drive(schedule: SpeechSchedule, frames: int, playhead_box: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Run producer + clock in lock step for ``frames`` frames; returns (engine audio, output audio)."""
    engine, output = [], []
    for n in range(frames):
        playhead_box[0] = n
        while schedule.consumed < (n + schedule.timeline.lead_frames) * SPF:
            engine.append(schedule.claim((n + schedule.timeline.lead_frames) * SPF - schedule.consumed).pcm)
        output.append(schedule.output_slice(n))
    return np.concatenate(engine), np.concatenate(output)


def test_schedule_plays_speech_once_at_both_rates_across_a_pause() -> None:
    rate = 24000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)  # 1 s
    sched = SpeechSchedule(lead_frames=8, window_samples=16000, max_pending_samples=10 * 16000)
    head = [0]
    placements = []
    for i in range(4):  # 4 × 0.25 s back to back
        placements.append(
            sched.accept(DecodedAudio(tone[i * 6000 : (i + 1) * 6000], rate, "raw"), False, lambda: 0)
        )
    engine1, out1 = _drive(sched, 100, head)  # 4 s: 1 s speech then a long pause
    later = sched.accept(DecodedAudio(tone, rate, "raw"), True, lambda: head[0] + 1)
    engine2, out2 = _drive_from(sched, 100, sched.end_frame, head)
    engine = np.concatenate([engine1, engine2])
    out = np.concatenate([out1, out2]).astype(np.float32) / 32767
    first = placements[0].start_sample
    assert [p.start_sample for p in placements] == [first + i * 4000 for i in range(4)]
    assert later.new_run and later.start_sample % SPF == 0
    # engine-rate timeline: speech exactly where scheduled, silence elsewhere
    assert np.abs(engine[:first]).max() == 0 and np.abs(engine[first + 16000 : later.start_sample]).max() == 0
    assert np.abs(engine[first : first + 16000]).max() > 0.45
    # output-rate timeline: same places ×3, and every sample of each tone present (energy check)
    o_first, o_later = first * 3, later.start_sample * 3
    assert np.abs(out[:o_first]).max() == 0 and np.abs(out[o_first + 48000 : o_later]).max() == 0
    seg = out[o_first : o_first + 48000]
    assert abs(np.sqrt(np.mean(seg**2)) - 0.5 / np.sqrt(2)) < 0.01
    assert len(out) == frame_bounds(sched.end_frame - 1, 48000)[1]


def _drive_from(
    sched: SpeechSchedule, start: int, end: int, head: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    engine, output = [], []
    for n in range(start, end):
        head[0] = n
        while sched.consumed < (n + sched.timeline.lead_frames) * SPF:
            engine.append(sched.claim((n + sched.timeline.lead_frames) * SPF - sched.consumed).pcm)
        output.append(sched.output_slice(n))
    return np.concatenate(engine), np.concatenate(output)


def test_interrupt_drops_unconsumed_speech() -> None:
    sched = SpeechSchedule(lead_frames=8, window_samples=16000, max_pending_samples=20 * 16000)
    sched.accept(DecodedAudio(np.full(48000, 0.3, np.float32), 48000, "raw"), False, lambda: 0)
    head = [0]
    _drive(sched, 20, head)
    dropped = sched.interrupt()
    assert abs(dropped - (1 - (19 + 8 - 8) / 25)) < 1e-3  # consumed up to playhead 19 + lead
    assert sched.buffer.pending == 0 and sched.queued_samples(20) <= 8 * SPF
