"""Session tracks: timeline pts, 20 ms audio, late frames repeated on time, end on close."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from server.sinks.fanout import RingTickFanout
from server.sinks.webrtc.tracks import FramePacer, SessionAudioTrack, SessionVideoTrack, split_audio
from tests.support.realtime import SLICE, synthetic_audio, synthetic_frame


def test_pacer_fills_after_period_plus_grace_and_caps_repeats() -> None:
    pacer = FramePacer(fps=25, grace_s=0.02, max_fill=2)
    assert pacer.timeout(0.0) is None  # nothing to repeat yet
    assert pacer.accept(10, now=1.0)
    assert pacer.timeout(1.0) == pytest.approx(0.06)
    assert pacer.timeout(1.1) == 0.0
    assert pacer.fill() == 11
    assert pacer.timeout(1.0) == pytest.approx(0.10)  # the next slot is one period later
    assert pacer.fill() == 12
    assert pacer.timeout(5.0) is None  # the clock stopped: wait instead of repeating forever
    assert not pacer.accept(12, now=1.2)  # that slot already went out as a repeat
    assert pacer.accept(13, now=1.21)
    assert pacer.timeout(1.21) == pytest.approx(0.06)


def test_split_audio_20ms_frames_with_timeline_pts() -> None:
    slice_ = synthetic_audio(7)
    frames = split_audio(slice_.pcm, slice_.sample_rate, slice_.index)
    assert [f.samples for f in frames] == [960, 960]
    assert [f.pts for f in frames] == [7 * SLICE, 7 * SLICE + 960]
    assert frames[0].time_base == fractions.Fraction(1, 48_000)
    assert frames[0].format.name == "s16" and frames[0].layout.name == "mono"
    joined = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    np.testing.assert_array_equal(joined, slice_.pcm)


@pytest.mark.parametrize(
    "pcm", [np.zeros(1000, np.int16), np.zeros(1920, np.float32), np.zeros((2, 960), np.int16)]
)
def test_split_audio_rejects_bad_slices(pcm: np.ndarray) -> None:
    with pytest.raises(ValueError, match="20 ms"):
        split_audio(pcm, 48_000, 0)


async def test_video_track_pts_follow_tick_index() -> None:
    fanout = RingTickFanout()
    track = SessionVideoTrack(fanout.subscribe())
    for i in (0, 1, 2):
        fanout.publish(synthetic_frame(i), synthetic_audio(i))
        frame = await track.recv()
        assert frame.pts == i * 3600
        assert frame.time_base == fractions.Fraction(1, 90_000)
        assert int(frame.to_ndarray(format="rgb24")[0, 0, 0]) == (i * 37) % 256


async def test_video_track_repeats_previous_frame_on_time_when_tick_is_late() -> None:
    fanout = RingTickFanout()
    track = SessionVideoTrack(fanout.subscribe(), pacer=FramePacer(grace_s=0.01, max_fill=3))
    loop = asyncio.get_running_loop()
    fanout.publish(synthetic_frame(0), synthetic_audio(0))
    t0 = loop.time()
    first = await track.recv()
    repeat = await track.recv()  # no tick comes: the previous image goes out one period later
    waited = loop.time() - t0
    assert 0.04 <= waited < 0.2
    assert repeat.pts == 3600
    np.testing.assert_array_equal(repeat.to_ndarray(format="rgb24"), first.to_ndarray(format="rgb24"))
    assert track.repeats_sent == 1
    # The late tick 1 arrives with tick 2: tick 1's slot is gone, tick 2 goes out under its own pts.
    fanout.publish(synthetic_frame(1), synthetic_audio(1))
    fanout.publish(synthetic_frame(2), synthetic_audio(2))
    assert (await track.recv()).pts == 2 * 3600


async def test_audio_track_yields_two_20ms_frames_per_tick_in_order() -> None:
    fanout = RingTickFanout()
    track = SessionAudioTrack(fanout.subscribe())
    for i in range(3):
        fanout.publish(synthetic_frame(i), synthetic_audio(i))
    pts = [(await track.recv()).pts for _ in range(6)]
    assert pts == [i * 960 for i in range(6)]


async def test_tracks_end_when_fanout_closes() -> None:
    fanout = RingTickFanout()
    sub = fanout.subscribe()
    video, audio = SessionVideoTrack(sub), SessionAudioTrack(sub)
    pending = [asyncio.ensure_future(video.recv()), asyncio.ensure_future(audio.recv())]
    await asyncio.sleep(0.01)
    fanout.close()
    for task in pending:
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(task, 1.0)
    assert video.readyState == "ended" and audio.readyState == "ended"
    assert fanout.subscriber_count == 0
