"""TickFanout policies: latest frame for video, ordered bounded audio, close, bounded memory."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc

import numpy as np
import pytest

from server.sinks.fanout import FanoutClosed, RingTickFanout, TickFanout, TickSubscription
from tests.support.realtime import SyntheticClock, synthetic_audio, synthetic_frame


def publish(fanout: RingTickFanout, *indices: int) -> None:
    for i in indices:
        fanout.publish(synthetic_frame(i), synthetic_audio(i))


async def test_satisfies_protocols() -> None:
    fanout = RingTickFanout()
    assert isinstance(fanout, TickFanout)
    assert isinstance(fanout.subscribe(), TickSubscription)


async def test_video_gets_latest_frame_and_counts_drops() -> None:
    fanout = RingTickFanout()
    sub = fanout.subscribe()
    publish(fanout, 0, 1, 2, 3, 4)
    assert (await sub.recv_video()).index == 4
    assert sub.stats.video_dropped == 4
    publish(fanout, 5)
    assert (await sub.recv_video()).index == 5
    assert sub.stats.video_dropped == 4
    assert sub.stats.video_delivered == 2


async def test_new_viewer_sees_current_frame_at_once_and_audio_from_next_tick() -> None:
    fanout = RingTickFanout()
    publish(fanout, 0, 1, 2)
    sub = fanout.subscribe()
    assert (await asyncio.wait_for(sub.recv_video(), 0.5)).index == 2
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.recv_audio(), 0.05)
    publish(fanout, 3)
    assert (await sub.recv_audio()).index == 3


async def test_audio_in_order_within_lag_bound() -> None:
    fanout = RingTickFanout(max_audio_lag_ms=200)  # 5 ticks
    sub = fanout.subscribe()
    publish(fanout, 0, 1, 2, 3, 4)
    got = [(await sub.recv_audio()).index for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert sub.stats.audio_skipped == 0


async def test_audio_skips_ahead_when_too_far_behind() -> None:
    fanout = RingTickFanout(capacity=16, max_audio_lag_ms=200)
    sub = fanout.subscribe()
    publish(fanout, *range(12))
    first = await sub.recv_audio()
    assert first.index == 11  # jumped to the newest tick
    assert sub.stats.audio_skipped == 11
    publish(fanout, 12)
    assert (await sub.recv_audio()).index == 12


async def test_wakes_waiter_when_clock_thread_publishes() -> None:
    fanout = RingTickFanout()
    sub = fanout.subscribe()
    waiter = asyncio.ensure_future(sub.recv_video())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    thread = threading.Thread(target=publish, args=(fanout, 7))
    thread.start()
    thread.join()
    assert (await asyncio.wait_for(waiter, 1.0)).index == 7


async def test_close_ends_pending_and_later_receives() -> None:
    fanout = RingTickFanout()
    sub = fanout.subscribe()
    pending = asyncio.ensure_future(sub.recv_audio())
    await asyncio.sleep(0.01)
    threading.Thread(target=fanout.close).start()
    with pytest.raises(FanoutClosed):
        await asyncio.wait_for(pending, 1.0)
    with pytest.raises(FanoutClosed):
        await sub.recv_video()
    with pytest.raises(FanoutClosed):
        fanout.subscribe()
    publish(fanout, 1)  # publishing after close is a no-op, not an error
    assert fanout.published == 0


async def test_subscription_close_unsubscribes() -> None:
    fanout = RingTickFanout()
    a, b = fanout.subscribe(), fanout.subscribe()
    assert fanout.subscriber_count == 2
    a.close()
    a.close()
    assert fanout.subscriber_count == 1
    with pytest.raises(FanoutClosed):
        await a.recv_video()
    publish(fanout, 0)
    assert (await b.recv_video()).index == 0


def test_capacity_must_cover_audio_lag() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RingTickFanout(capacity=4, max_audio_lag_ms=200)


async def test_viewer_that_stops_reading_does_not_grow_memory() -> None:
    fanout = RingTickFanout()
    stalled = fanout.subscribe()
    frame, audio = synthetic_frame(0, size=128), synthetic_audio(0)
    for _ in range(50):  # warm up: the ring fills once
        fanout.publish(frame, audio)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(3000):  # 2 minutes of ticks with fresh images
        fanout.publish(synthetic_frame(i, size=128), audio)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # The ring holds 16 ticks (~50 KB of 128² images) whatever the backlog; 3000 kept would be 150 MB.
    assert grown < 2_000_000
    assert (await stalled.recv_video()).index == 2999
    assert stalled.stats.video_dropped == 3049


async def test_real_clock_thread_feeds_two_viewers_at_25fps() -> None:
    fanout = RingTickFanout()
    subs = [fanout.subscribe(), fanout.subscribe()]
    clock = SyntheticClock(fanout).start()
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def read(sub) -> list[int]:
            return [(await sub.recv_audio()).index for _ in range(25)]

        audio = await asyncio.gather(*(read(s) for s in subs))
        elapsed = loop.time() - t0
    finally:
        clock.stop()
        fanout.close()
    assert audio[0] == audio[1]
    for indices, sub in zip(audio, subs, strict=True):
        assert np.all(np.diff(indices) == 1)
        assert sub.stats.audio_skipped == 0
    assert 0.8 < elapsed < 2.0  # paced by the clock, not faster
    assert clock.max_publish_s < 0.02
