"""EventBus: every listener gets every event, bounded queues report losses, close drains."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server.session import events as ev
from server.session.events import EventBus, EventBusClosed


async def test_every_listener_gets_events_in_order() -> None:
    bus = EventBus()
    a, b = bus.listen(), bus.listen()
    bus.publish(ev.speech_started(1, 25))
    bus.publish(ev.speech_ended(9, 25))
    for listener in (a, b):
        assert (await listener.recv()).type == "speech_started"
        assert (await listener.recv()).type == "speech_ended"


async def test_listener_sees_only_events_after_it_joined() -> None:
    bus = EventBus()
    bus.publish(ev.complete())
    listener = bus.listen()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(listener.recv(), 0.05)


async def test_overflow_drops_oldest_and_reports_count() -> None:
    bus = EventBus(listener_capacity=3)
    listener = bus.listen()
    for i in range(10):
        bus.publish(ev.accepted(i, 1, 0.0))
    lost = await listener.recv()
    assert lost.to_dict() == {"type": "events_lost", "count": 7}
    assert [(await listener.recv()).data["seq"] for _ in range(3)] == [7, 8, 9]


async def test_publish_from_another_thread_wakes_listener() -> None:
    bus = EventBus()
    listener = bus.listen()
    pending = asyncio.ensure_future(listener.recv())
    await asyncio.sleep(0.01)
    threading.Thread(target=bus.publish, args=(ev.speech_started(3, 25),)).start()
    assert (await asyncio.wait_for(pending, 1.0)).data["frame_index"] == 3


async def test_close_drains_then_ends() -> None:
    bus = EventBus()
    listener = bus.listen()
    bus.publish(ev.complete())
    bus.close()
    assert (await listener.recv()).type == "complete"
    with pytest.raises(EventBusClosed):
        await listener.recv()
    with pytest.raises(EventBusClosed):
        bus.listen()
    bus.publish(ev.complete())  # no-op after close


async def test_listener_close_detaches() -> None:
    bus = EventBus()
    listener = bus.listen()
    assert bus.listener_count == 1
    listener.close()
    assert bus.listener_count == 0
    with pytest.raises(EventBusClosed):
        await listener.recv()
