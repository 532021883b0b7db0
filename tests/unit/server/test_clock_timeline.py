"""The pure timeline: where speech lands relative to a fake playhead, and what each consumer reads."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from server.session.timeline import SPF, Block, SpeechTimeline, frame_bounds

LEAD = 8


def test_first_chunk_starts_lead_frames_after_the_playhead() -> None:
    tl = SpeechTimeline(LEAD)
    p = tl.schedule(8000, playhead=30)
    assert p.start_frame == 38 and p.start_sample == 38 * SPF and p.new_run
    assert tl.queued_samples(30) == 8000


def test_chunks_fed_ahead_of_time_play_back_to_back() -> None:
    tl = SpeechTimeline(LEAD)
    a = tl.schedule(8000, playhead=0)
    b = tl.schedule(3333, playhead=2)
    c = tl.schedule(100, playhead=5)
    assert (b.start_sample, c.start_sample) == (a.start_sample + 8000, a.start_sample + 11333)
    assert not b.new_run and not c.new_run and len(tl.runs) == 1


def test_a_pause_means_silence_then_a_new_run_on_a_frame_boundary() -> None:
    tl = SpeechTimeline(LEAD)
    tl.schedule(1000, playhead=0)  # frames 8..9 (1000 samples)
    # the producer consumes past the end of the run (silence after it): the run closes
    while tl.consumed < 40 * SPF:
        b = tl.next_block(SPF)
        tl.consume(b)
    assert not tl.runs[0].open
    p = tl.schedule(500, playhead=30)
    assert p.new_run and p.start_frame == max(30 + LEAD, -(-tl.consumed // SPF)) and p.start_sample % SPF == 0


def test_speech_never_lands_where_the_engine_already_listened() -> None:
    tl = SpeechTimeline(LEAD)
    tl.consume(Block(0, 20 * SPF + 7, None))  # the producer ran ahead of playhead + lead
    p = tl.schedule(640, playhead=3)
    assert p.start_sample >= tl.consumed and p.start_sample % SPF == 0 and p.start_frame == 21


def test_an_open_run_that_the_engine_reached_exactly_is_still_extended() -> None:
    tl = SpeechTimeline(LEAD)
    first = tl.schedule(1280, playhead=0)
    tl.consume(tl.next_block(first.start_sample))
    tl.consume(tl.next_block(1280))
    assert tl.consumed == tl.runs[0].end_sample and tl.runs[0].open
    p = tl.schedule(640, playhead=9)
    assert not p.new_run and p.start_sample == first.start_sample + 1280


def test_next_block_walks_silence_and_speech_without_crossing_either() -> None:
    tl = SpeechTimeline(LEAD)
    tl.schedule(1000, playhead=0)
    b1 = tl.next_block(1 << 30)
    assert b1 == Block(0, LEAD * SPF, None)
    tl.consume(b1)
    b2 = tl.next_block(1 << 30)
    assert b2 == Block(LEAD * SPF, 1000, 0)
    tl.consume(Block(b2.start, 300, 0))
    assert tl.next_block(1 << 30) == Block(LEAD * SPF + 300, 700, 300)


def test_output_pieces_place_speech_sample_exactly_at_any_rate() -> None:
    for rate in (48_000, 44_100, 16_000):
        tl = SpeechTimeline(LEAD)
        n16 = 8000
        n_out = n16 * rate // 16000
        p = tl.schedule(n16, playhead=0, n_out=n_out)
        covered = []
        for frame in range(0, 40):
            f0, f1 = frame_bounds(frame, rate)
            for piece in tl.output_pieces(frame, rate):
                assert piece.dst >= 0 and piece.dst + piece.length <= f1 - f0
                covered.append((f0 + piece.dst, piece.speech_offset, piece.length))
        start = p.start_frame * rate // 25
        assert covered[0][0] == start and covered[0][1] == 0
        assert sum(c[2] for c in covered) == n_out
        for (pos, off, n), (pos2, off2, _) in itertools.pairwise(covered):
            assert pos + n == pos2 and off + n == off2  # contiguous, in order, no duplicates


def test_finalize_ends_after_the_last_speech_frame() -> None:
    tl = SpeechTimeline(LEAD)
    p = tl.schedule(16000, playhead=10)
    assert tl.finalize(playhead=12) == p.start_frame + 25
    tl2 = SpeechTimeline(LEAD)
    assert tl2.finalize(playhead=7) == 7  # nothing queued: end now


def test_truncate_drops_only_what_the_engine_has_not_consumed() -> None:
    tl = SpeechTimeline(LEAD)
    tl.schedule(16000, playhead=0, n_out=48000)
    tl.consume(tl.next_block(1 << 30))  # silence up to the run
    tl.consume(tl.next_block(4000))  # 4000 speech samples consumed
    dropped = tl.truncate(48_000)
    assert dropped == 12000
    run = tl.runs[0]
    assert run.speech_end - run.speech_start == 4000 and run.out_end - run.out_start == 12000
    assert not run.open and tl.queued_samples(0) == 4000
    p = tl.schedule(640, playhead=LEAD)  # later speech gets fresh stream positions after a gap
    assert p.new_run and tl.runs[-1].speech_start == 16000


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.integers(1, 30000), min_size=1, max_size=12),
    gaps=st.lists(st.integers(0, 60), min_size=12, max_size=12),
    pushes=st.lists(st.integers(1, 3000), min_size=50, max_size=50),
)
def test_property_every_speech_sample_plays_once_in_order(chunks, gaps, pushes) -> None:
    """Random chunk sizes, arrival times and producer push sizes: the engine hears every speech
    sample exactly once, in order, never before the lead, and output pieces cover the same speech."""
    tl = SpeechTimeline(LEAD)
    playhead, heard, push_i = 0, [], 0
    for chunk, gap in zip(chunks, gaps, strict=False):
        playhead += gap
        # the producer keeps the engine fed up to playhead + lead (it never lags, never runs beyond)
        while tl.consumed < (playhead + LEAD) * SPF:
            b = tl.next_block(min(pushes[push_i % len(pushes)], (playhead + LEAD) * SPF - tl.consumed))
            push_i += 1
            if b.is_speech:
                heard.append((b.start, b.speech_offset, b.length))
            tl.consume(b)
        p = tl.schedule(chunk, playhead)
        assert p.start_sample >= tl.consumed - 0 or not p.new_run
        assert p.start_frame >= playhead or not p.new_run
        if p.new_run:
            assert p.start_frame >= playhead + LEAD and p.start_sample % SPF == 0
    end = tl.finalize(playhead)
    while tl.consumed < end * SPF:
        b = tl.next_block(2000)
        if b.is_speech:
            heard.append((b.start, b.speech_offset, b.length))
        tl.consume(b)
    total = sum(chunks)
    offsets = np.concatenate([np.arange(o, o + n) for _, o, n in heard])
    assert np.array_equal(offsets, np.arange(total))
    positions = np.concatenate([np.arange(s, s + n) for s, _, n in heard])
    assert np.all(np.diff(positions) > 0)  # timeline order == speech order


def _realtime_feed_runs(lead: int, horizon: int, jitter_frames: float, seed: int = 0) -> int:
    """Feed 1-frame chunks at real-time pace with arrival jitter; the producer listens up to
    playhead + horizon. Returns how many runs (utterance pieces) the speech was cut into."""
    rng = np.random.default_rng(seed)
    arrivals = np.sort(np.arange(200) + 3 + rng.uniform(-jitter_frames, jitter_frames, 200))
    tl = SpeechTimeline(lead)
    for t in arrivals:
        playhead = int(t)
        while tl.consumed < (playhead + horizon) * SPF:
            tl.consume(tl.next_block((playhead + horizon) * SPF - tl.consumed))
        tl.schedule(SPF, playhead)
    return len(tl.runs)


def test_real_time_feeds_with_jitter_stay_one_utterance_when_lead_exceeds_the_horizon() -> None:
    """Why the producer's horizon is shorter than the scheduling lead: the difference absorbs the
    arrival jitter of a feed that runs at exactly real-time pace (a microphone over a WebSocket)."""
    slack = [_realtime_feed_runs(lead=10, horizon=8, jitter_frames=0.9, seed=s) for s in range(8)]
    none = [_realtime_feed_runs(lead=8, horizon=8, jitter_frames=0.9, seed=s) for s in range(8)]
    assert slack == [1] * 8  # ±36 ms of jitter within 80 ms of slack: never a gap
    assert sum(none) > 8  # without slack the same feeds get chopped into pieces
