"""Producer on virtual time: the render horizon, barge-in rewind, and late frames skipped.

The overload tests model compute that cannot keep up: every rendered frame takes 60 ms of virtual
time (1.5x real time) while the clock keeps ticking (``SteppedClock.catch_up`` inside the render).
Without skipping, the producer renders frames that are already late, falls further behind each
push and the picture freezes for good (the cliff); with skipping, motion runs on, only frames
that could not make their tick are left out, and the picture never stands still for long.
"""

from __future__ import annotations

import numpy as np

from models.types import FPS, SAMPLES_PER_FRAME
from server.session.session import INTERRUPT_KEEP_FRAMES
from tests.support.clock import HeldRunner, InlineRunner, SteppedClock
from tests.unit.server.session.helpers import (
    RewindableProbe,
    RewindableStallingProbe,
    SkippingTimedProbe,
    StallingProbe,
    TimedProbe,
    make_session,
    speech,
)

PREROLL = round(0.3 * FPS)


def test_producer_keeps_the_stream_horizon_frames_ahead_of_the_clock() -> None:
    clock, runner = SteppedClock(), InlineRunner()
    session, _sink = make_session(clock, runner, margin=3)
    assert session.horizon_frames == session.lookahead + 3 == 6
    session.start()
    try:
        clock.wait_parked()
        assert session.schedule.consumed == session.horizon_frames * SAMPLES_PER_FRAME  # first push
        session.push_pcm(speech(2.0), 16_000)
        clock.step(PREROLL)
        for _ in range(80):
            clock.step(1)
            ahead = session.schedule.consumed / SAMPLES_PER_FRAME - session.playhead
            # pumped when >= min_push_frames (2) are due, to exactly the horizon
            assert session.horizon_frames - 2 < ahead <= session.horizon_frames
            assert len(session.frames) <= session.horizon_frames - session.lookahead + 1
        assert session.stale_ticks == 0
        # jobs carry the deadline of the first frame they complete, in order
        assert runner.deadlines == sorted(runner.deadlines)
    finally:
        session.close()


def test_barge_in_rewinds_the_stream_and_idles_right_after_the_playhead() -> None:
    clock, runner = SteppedClock(), InlineRunner()
    stream = RewindableProbe(128, 3, 0.0)
    session, sink = make_session(clock, runner, stream)
    session.start()
    try:
        clock.wait_parked()
        start = session.push_pcm(speech(3.0), 16_000).placement.start_frame
        clock.step(start + 10)
        assert sink.ticks[-1][0].speech
        playhead = session.playhead
        dropped = session.interrupt()
        assert 2.0 < dropped < 3.0 - 10 / FPS + 0.05  # what had not played yet (bar the kept frames)
        clock.step(30)
        cut = playhead + INTERRUPT_KEEP_FRAMES
        after = sink.ticks[cut:]
        assert all(f.speech for f, _ in sink.ticks[start:cut])
        assert not any(f.speech for f, _ in after)  # re-rendered as idle, from the cut on
        assert all(np.abs(a.pcm).max() == 0 for _, a in after)  # and the audio is silent there
        assert [sink.picture_of(t) for t in range(cut, len(sink.ticks))] == list(range(cut, len(sink.ticks)))
        assert session.stale_ticks == 0  # the rewind never left the clock without a frame
    finally:
        session.close()


def _overloaded(stream: TimedProbe, clock: SteppedClock, runner: HeldRunner, ticks: int):
    session, sink = make_session(clock, runner, stream)
    session.start()
    clock.wait_parked()
    session.push_pcm(speech(ticks / FPS + 1), 16_000)
    try:
        while len(sink.ticks) < ticks:
            while len(sink.ticks) < ticks and runner.run_pending():
                pass  # the producer's jobs; the ticks due meanwhile are emitted inside them
            clock.step(1)  # nothing left to compute: on to the next tick
        return session, sink
    finally:
        runner.close_session(session.close)


def test_late_frames_are_skipped_motion_continues_and_the_face_never_freezes() -> None:
    clock, runner = SteppedClock(), HeldRunner()
    stream = SkippingTimedProbe(clock, cost_s=0.060)
    session, sink = _overloaded(stream, clock, runner, ticks=250)
    assert session.frames_skipped > 50
    # (almost) nothing is rendered only to miss its tick: the CPU goes to frames that are shown
    assert session.frames.dropped_late <= 0.05 * session.frames_rendered
    assert session.ticks.longest_stale_run <= 5  # never frozen longer than 200 ms
    fps = session.ticks.effective_fps
    assert 10.0 <= fps <= 20.0, fps  # a lower frame rate instead (25 / 1.5 at best)
    # every picture shown is its tick's frame or a recent one: motion keeps up with the audio
    shown = [(t, sink.picture_of(t)) for t in range(PREROLL + 10, len(sink.ticks))]
    assert all(p is not None and 0 <= t - p <= 5 for t, p in shown), shown
    rendered = [i for i in stream.rendered if i >= PREROLL]
    assert rendered == sorted(set(rendered))  # each frame at most once, in timeline order


def test_without_skipping_the_same_overload_freezes_the_face() -> None:
    """The control: the cliff the skipping removes (so the test above can fail)."""
    clock, runner = SteppedClock(), HeldRunner()
    stream = TimedProbe(clock, cost_s=0.060)
    session, _sink = _overloaded(stream, clock, runner, ticks=250)
    assert session.frames_skipped == 0
    assert session.frames.dropped_late > 100
    assert session.ticks.longest_stale_run > 50


def _after_stall(stream: StallingProbe) -> tuple[int, int]:
    clock, runner = SteppedClock(), HeldRunner()
    stream._vclock = clock
    session, _ = _overloaded(stream, clock, runner, ticks=300)
    return session.ticks.longest_stale_run, session.producer_fast_forwarded


def test_when_motion_falls_behind_the_producer_jumps_ahead_instead_of_freezing() -> None:
    """A 1 s stall (a noisy neighbour) leaves the stream 25 frames behind; motion at 0.75x real
    time alone would take seconds to catch up, every frame it made already late (frozen face).
    A rewindable stream jumps to just after the playhead instead: the face moves again at once."""
    jumping = RewindableStallingProbe(SteppedClock(), motion_s=0.030, cost_s=0.005, stall_at=100, stall_s=1.0)
    longest, jumped = _after_stall(jumping)
    assert jumped >= 20
    assert longest <= 1.0 * FPS + 6  # the stall itself (25 ticks) plus the way back
    stuck = StallingProbe(SteppedClock(), motion_s=0.030, cost_s=0.005, stall_at=100, stall_s=1.0)
    longest_stuck, jumped_stuck = _after_stall(stuck)
    assert jumped_stuck == 0 and longest_stuck > longest + 25
