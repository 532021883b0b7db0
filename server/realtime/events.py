"""A session's event bus: published from any thread, read by WebSocket and SSE listeners.

Policy: each listener has a bounded queue (``listener_capacity``); when it overflows the oldest
event goes and the listener's next read is an ``events_lost`` event with the count, so a slow
listener costs bounded memory and still learns that it missed something. After ``close`` the
listeners drain what they hold, then ``recv`` raises ``EventBusClosed``.
"""

from __future__ import annotations

from collections import deque

from server.realtime.protocol import ServerEvent, events_lost
from server.realtime.wakeup import LoopNotifier


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
