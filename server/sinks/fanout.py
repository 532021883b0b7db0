"""The session clock's tick fan-out: one publisher thread, any number of asyncio viewers.

Why a shared ring instead of a queue per viewer: ``publish`` runs on the session's clock thread
every 40 ms and must cost O(1) whatever the number of viewers, and a viewer that stops reading
must not grow memory. The fan-out keeps only the last ``capacity`` ticks; each subscription is a
pair of cursors into that ring:

* video — latest frame wins: ``recv_video`` returns the newest tick not yet seen (equivalent to a
  one-slot queue per viewer, oldest dropped); skipped frames are counted in ``video_dropped``.
* audio — in order: ``recv_audio`` returns ticks one after another; when the viewer is more than
  ``max_audio_lag_ms`` behind, it jumps to the newest tick and counts the skipped ticks in
  ``audio_skipped`` (a viewer that falls behind hears a gap, never an ever-growing delay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from models.types import FPS, AudioSlice, VideoFrame
from server.sinks.wakeup import LoopNotifier


class FanoutClosed(Exception):
    """The session ended: no tick will ever be published again."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One clock tick as published; ``seq`` counts publications of this fan-out."""

    seq: int
    frame: VideoFrame
    audio: AudioSlice


@dataclass(slots=True)
class SubscriptionStats:
    video_delivered: int = 0
    video_dropped: int = 0
    audio_delivered: int = 0
    audio_skipped: int = 0


@runtime_checkable
class TickSubscription(Protocol):
    """One viewer's view of the session clock. Methods run on the fan-out's event loop."""

    stats: SubscriptionStats

    async def recv_video(self) -> VideoFrame:
        """The newest frame not yet returned; waits for the next tick if none. Raises FanoutClosed."""
        ...

    async def recv_audio(self) -> AudioSlice:
        """The next audio slice in order (skipping ahead when too far behind). Raises FanoutClosed."""
        ...

    def close(self) -> None:
        """Stop receiving (idempotent); pending and later recv calls raise FanoutClosed."""
        ...


@runtime_checkable
class TickFanout(Protocol):
    """What the session clock publishes to and viewers subscribe to."""

    @property
    def closed(self) -> bool: ...

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        """Called once per tick from the clock thread; O(1), never blocks, never raises on viewers."""
        ...

    def subscribe(self) -> TickSubscription:
        """A new viewer (call on the event loop that will await it)."""
        ...

    def close(self) -> None:
        """End every subscription (idempotent, any thread)."""
        ...


class RingTickFanout:
    """``TickFanout`` over a fixed ring of recent ticks; see the module docstring for the policy."""

    def __init__(self, *, capacity: int = 16, max_audio_lag_ms: float = 200.0, fps: int = FPS) -> None:
        tick_ms = 1000.0 / fps
        self.max_audio_lag_ticks = max(1, int(max_audio_lag_ms // tick_ms))
        if capacity <= self.max_audio_lag_ticks + 1:
            raise ValueError(
                f"capacity {capacity} must exceed the audio lag bound ({self.max_audio_lag_ticks} ticks) + 1"
            )
        self._capacity = capacity
        self._ring: list[Tick | None] = [None] * capacity
        self._head = -1  # seq of the newest published tick
        self._closed = False
        self._subscribers = 0
        self._notifier = LoopNotifier()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def published(self) -> int:
        return self._head + 1

    @property
    def subscriber_count(self) -> int:
        return self._subscribers

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        with self._notifier.lock:
            if self._closed:
                return
            seq = self._head + 1
            self._ring[seq % self._capacity] = Tick(seq, frame, audio)
            self._head = seq
            self._notifier.notify_locked()

    def subscribe(self) -> RingSubscription:
        with self._notifier.lock:
            if self._closed:
                raise FanoutClosed("the session's stream has ended")
            self._subscribers += 1
            return RingSubscription(
                self, self._notifier, video_next=max(self._head, 0), audio_next=self._head + 1
            )

    def close(self) -> None:
        with self._notifier.lock:
            if self._closed:
                return
            self._closed = True
            self._ring = [None] * self._capacity  # release the frames now, not when viewers go
            self._notifier.notify_locked()

    # -- used by RingSubscription, with the notifier lock held --------------------------------
    def _head_locked(self) -> int:
        return self._head

    def _tick_locked(self, seq: int) -> Tick:
        tick = self._ring[seq % self._capacity]
        if tick is None or tick.seq != seq:  # cannot happen while lag < capacity; guard anyway
            raise RuntimeError(f"tick {seq} is no longer in the ring")
        return tick

    def _unsubscribe_locked(self) -> None:
        self._subscribers -= 1


class RingSubscription:
    """A viewer's two cursors into a ``RingTickFanout``."""

    def __init__(self, fanout: RingTickFanout, notifier: LoopNotifier, *, video_next: int, audio_next: int):
        self._fanout = fanout
        self._notifier = notifier
        self._video_next = video_next
        self._audio_next = audio_next
        self._closed = False
        self.stats = SubscriptionStats()

    async def recv_video(self) -> VideoFrame:
        while True:
            with self._notifier.lock:
                self._raise_if_closed()
                head = self._fanout._head_locked()
                if head >= self._video_next:
                    tick = self._fanout._tick_locked(head)
                    self.stats.video_dropped += head - self._video_next
                    self.stats.video_delivered += 1
                    self._video_next = head + 1
                    return tick.frame
                waiter = self._notifier.park()
            await waiter

    async def recv_audio(self) -> AudioSlice:
        while True:
            with self._notifier.lock:
                self._raise_if_closed()
                head = self._fanout._head_locked()
                if head >= self._audio_next:
                    pending = head - self._audio_next + 1
                    if pending > self._fanout.max_audio_lag_ticks:
                        self.stats.audio_skipped += head - self._audio_next
                        self._audio_next = head
                    tick = self._fanout._tick_locked(self._audio_next)
                    self._audio_next += 1
                    self.stats.audio_delivered += 1
                    return tick.audio
                waiter = self._notifier.park()
            await waiter

    def close(self) -> None:
        with self._notifier.lock:
            if self._closed:
                return
            self._closed = True
            self._fanout._unsubscribe_locked()
            self._notifier.notify_locked()

    def _raise_if_closed(self) -> None:
        if self._closed or self._fanout.closed:
            raise FanoutClosed("the session's stream has ended")
