"""SessionClock on virtual time (SteppedClock): ticks, stale ticks, pre-roll, end of speech.

Every test steps a real ``Session`` (real SpeechSchedule, FrameQueue, producer) tick by tick; the
engine is the barcode probe, so each emitted picture says which timeline frame it shows.
"""

from __future__ import annotations

import numpy as np

from models.types import FPS
from server.session.state import SessionState
from tests.support.clock import HeldRunner, InlineRunner, SteppedClock
from tests.unit.server.session.helpers import make_session, speech

PREROLL = round(0.3 * FPS)


def test_stale_tick_repeats_the_previous_picture_and_keeps_the_audio() -> None:
    clock, runner = SteppedClock(), HeldRunner()
    session, sink = make_session(clock, runner)
    session.start()
    try:
        clock.wait_parked()
        clock.step(PREROLL)  # nothing rendered yet: pre-roll shows the still avatar, never stale
        assert session.stale_ticks == 0 and len(sink.ticks) == PREROLL
        assert runner.run_pending() == 1  # the producer catches up to the horizon
        clock.step(3)
        shown = [sink.picture_of(t) for t in range(PREROLL, PREROLL + 3)]
        assert shown == [PREROLL, PREROLL + 1, PREROLL + 2]
        assert session.stale_ticks == 0
        clock.step(2)  # compute holds back: two stale ticks show the last picture again
        shown = [sink.picture_of(t) for t in range(PREROLL + 3, PREROLL + 5)]
        assert shown == [PREROLL + 2, PREROLL + 2]
        assert session.stale_ticks == 2 and session.ticks.longest_stale_run == 2
        assert all(len(a.pcm) == 48_000 // FPS for _, a in sink.ticks)  # audio every tick
        assert [a.index for _, a in sink.ticks] == list(range(len(sink.ticks)))
        runner.run_pending()
        clock.step(1)
        assert sink.picture_of(len(sink.ticks) - 1) == len(sink.ticks) - 1  # fresh again
        assert session.ticks.stale_run == 0 and session.ticks.longest_stale_run == 2
        assert session.status()["effective_fps"] < FPS
    finally:
        session.close()


def test_preroll_is_emitted_at_once_and_left_out_of_lateness() -> None:
    clock, runner = SteppedClock(), InlineRunner()
    start = clock.now()
    session, _sink = make_session(clock, runner)
    session.start()
    try:
        clock.wait_parked()
        clock.step(PREROLL)
        assert clock.now() == start  # the pre-roll's deadlines were already past: no waiting
        assert session.t0 == start - 0.3
        clock.step(1)
        assert clock.now() == session.t0 + PREROLL / FPS  # then real-time pace
        assert session.stale_ticks == 0
        lateness = session.lateness.summary_ms()
        # every frame the producer made counted, except the pre-roll ones
        assert lateness["frames"] == session.frames_rendered - PREROLL > 0
        assert lateness["max"] < 0  # inline compute: always early
    finally:
        session.close()


def test_end_of_speech_completes_the_stream_after_the_last_speech_frame() -> None:
    clock, runner = SteppedClock(), InlineRunner()
    session, sink = make_session(clock, runner)
    session.start()
    try:
        clock.wait_parked()
        clock.step(5)
        placement = session.push_pcm(speech(0.5), 16_000).placement
        assert placement is not None and placement.start_frame == 5 + session.lead_frames
        session.finalize()
        assert session.state is SessionState.DRAINING
        clock.step(200, done=lambda: session.state is SessionState.COMPLETE)
        assert session.state is SessionState.COMPLETE and sink.ended
        end = session.schedule.end_frame
        assert end is not None and len(sink.ticks) == end
        speech_ticks = [f.index for f, _ in sink.ticks if f.speech]
        assert len(speech_ticks) in (12, 13, 14) and speech_ticks[0] >= placement.start_frame
        loud = [i for i, (_, a) in enumerate(sink.ticks) if np.abs(a.pcm).max() > 1000]
        assert loud[0] == placement.start_frame and abs(len(loud) - 12.5) <= 1.5
        assert session.stale_ticks == 0
    finally:
        session.close()
