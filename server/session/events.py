"""A session's event bus: published from any thread, read by WebSocket and SSE listeners.

Policy: each listener has a bounded queue (``listener_capacity``); when it overflows the oldest
event goes and the listener's next read is an ``events_lost`` event with the count, so a slow
listener costs bounded memory and still learns that it missed something. After ``close`` the
listeners drain what they hold, then ``recv`` raises ``EventBusClosed``.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from server.sinks.wakeup import LoopNotifier

EVENT_TYPES = frozenset(
    {
        "accepted",
        "backpressure",
        "final_accepted",
        "interrupted",
        "speech_started",
        "speech_ended",
        "complete",
        "error",
        "events_lost",
    }
)


@dataclass(frozen=True, slots=True)
class ServerEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if "type" in self.data:
            raise ValueError("event data must not carry its own 'type'")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)


def accepted(seq: int, samples: int, queued_seconds: float) -> ServerEvent:
    """Binary message number ``seq`` (0-based per socket) is scheduled; speech now queued."""
    return ServerEvent(
        "accepted", {"seq": seq, "samples": samples, "queued_seconds": round(queued_seconds, 3)}
    )


def backpressure(seq: int, queued_seconds: float, retry_after_s: float, message: str) -> ServerEvent:
    """Message ``seq`` was NOT accepted (queue full); the client should resend it after a while."""
    return ServerEvent(
        "backpressure",
        {
            "seq": seq,
            "queued_seconds": round(queued_seconds, 3),
            "retry_after_seconds": round(retry_after_s, 3),
            "message": message,
        },
    )


def final_accepted() -> ServerEvent:
    return ServerEvent("final_accepted")


def interrupted(dropped_seconds: float) -> ServerEvent:
    return ServerEvent("interrupted", {"dropped_seconds": round(dropped_seconds, 3)})


def speech_started(frame_index: int, fps: int) -> ServerEvent:
    """Published by the session when the first speech frame of an utterance is on the timeline."""
    return ServerEvent(
        "speech_started", {"frame_index": frame_index, "stream_time": round(frame_index / fps, 3)}
    )


def speech_ended(frame_index: int, fps: int, *, interrupted: bool = False) -> ServerEvent:
    """Published at the first idle frame after speech (``interrupted`` if cut by barge-in)."""
    return ServerEvent(
        "speech_ended",
        {"frame_index": frame_index, "stream_time": round(frame_index / fps, 3), "interrupted": interrupted},
    )


def complete() -> ServerEvent:
    return ServerEvent("complete")


def error(code: str, message: str) -> ServerEvent:
    return ServerEvent("error", {"code": code, "message": message})


def events_lost(count: int) -> ServerEvent:
    return ServerEvent("events_lost", {"count": count})


class EventBusClosed(Exception):
    """The bus is closed and this listener has no events left."""


class EventListener:
    def __init__(self, bus: EventBus, capacity: int) -> None:
        self._bus = bus
        self._queue: deque[ServerEvent] = deque()
        self._capacity = capacity
        self._lost = 0
        self._closed = False

    @property
    def lost(self) -> int:
        """Events dropped for this listener and not yet reported."""
        return self._lost

    def _offer_locked(self, event: ServerEvent) -> None:
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self._lost += 1
        self._queue.append(event)

    async def recv(self) -> ServerEvent:
        notifier = self._bus._notifier
        while True:
            with notifier.lock:
                if self._lost:
                    count, self._lost = self._lost, 0
                    return events_lost(count)
                if self._queue:
                    return self._queue.popleft()
                if self._closed or self._bus.closed:
                    raise EventBusClosed("no more events")
                waiter = notifier.park()
            await waiter

    def close(self) -> None:
        with self._bus._notifier.lock:
            self._closed = True
            self._bus._listeners.discard(self)
            self._bus._notifier.notify_locked()


class EventBus:
    def __init__(self, *, listener_capacity: int = 256) -> None:
        if listener_capacity < 1:
            raise ValueError("listener_capacity must be >= 1")
        self._capacity = listener_capacity
        self._listeners: set[EventListener] = set()
        self._notifier = LoopNotifier()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    def publish(self, event: ServerEvent) -> None:
        """Deliver to every current listener; any thread, never blocks on a listener."""
        with self._notifier.lock:
            if self._closed:
                return
            for listener in self._listeners:
                listener._offer_locked(event)
            self._notifier.notify_locked()

    def listen(self) -> EventListener:
        """A listener that receives events published from now on."""
        with self._notifier.lock:
            if self._closed:
                raise EventBusClosed("the session's event stream has ended")
            listener = EventListener(self, self._capacity)
            self._listeners.add(listener)
            return listener

    def close(self) -> None:
        with self._notifier.lock:
            self._closed = True
            self._notifier.notify_locked()
