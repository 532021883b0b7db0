"""The session clock: tick n, at t0 + n/25, is frame n (or the previous picture again) + audio slice n.

Why a class of its own, with time injected: the clock is the one part of a session that waits on
real time, which made the whole ``Session`` untestable. Here the waiting goes through a ``Clock``
(``now`` + ``wait_until``), so a unit test drives ticks one by one with
``tests.support.clock.SteppedClock`` and checks stale ticks, pre-roll and the end of speech without
sleeping; production uses ``MONOTONIC``.

What a tick does never depends on whether the frame is ready: the clock never waits for the
producer. A frame not rendered by its tick is replaced by the previous picture (a *stale* tick),
while the audio slice always comes from the timeline, so a late frame costs a repeated picture,
never A/V drift. The counters say how often that happened and how long the longest run of repeated
pictures was (what a viewer sees as a frozen face).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hls.base import TickWriter
from models.engines.skipping import TickDeadlines
from models.types import FPS, AudioSlice, VideoFrame
from server.session.frames import FrameQueue
from server.session.speech import SpeechSchedule

log = logging.getLogger("facestream.session")


class Clock(Protocol):
    """Time as the session clock sees it (monotonic seconds)."""

    def now(self) -> float: ...

    def wait_until(self, deadline: float, stop: threading.Event) -> bool:
        """Return once ``now() >= deadline`` or ``stop`` is set; True iff ``stop`` is set."""
        ...


class MonotonicClock:
    """Real time: ``time.monotonic`` and an interruptible sleep on the stop event."""

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, deadline: float, stop: threading.Event) -> bool:
        delay = deadline - time.monotonic()
        if delay > 0:
            return stop.wait(delay)
        return stop.is_set()


MONOTONIC = MonotonicClock()


class TickSubscriber(Protocol):
    """A secondary output (WebRTC fan-out, recorder). ``publish`` must return at once."""

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None: ...
    def close(self) -> None: ...


class Subscribers:
    """The session's secondary outputs; a subscriber that raises is detached (and closed), so one
    broken viewer never stops the clock."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._subs: list[TickSubscriber] = []

    def add(self, sub: TickSubscriber) -> None:
        with self._lock:
            self._subs.append(sub)

    def remove(self, sub: TickSubscriber) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._subs.remove(sub)

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.publish(frame, audio)
            except Exception:
                log.exception("session %s: subscriber %r failed; detached", self._name, sub)
                self.remove(sub)
                with contextlib.suppress(Exception):
                    sub.close()

    def close_all(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                sub.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._subs)


@dataclass(slots=True)
class TickCounters:
    """What the clock emitted; pre-roll ticks (emitted at once, see SessionConfig.preroll_s) never
    count as stale."""

    ticks_emitted: int = 0
    stale_ticks: int = 0
    stale_speech_ticks: int = 0
    """Stale ticks that carried speech: the frozen-face count a viewer notices."""
    speech_frames_emitted: int = 0
    stale_run: int = 0
    longest_stale_run: int = 0
    """Longest run of consecutive stale ticks (× 40 ms = the longest frozen picture)."""

    @property
    def effective_fps(self) -> float:
        """Distinct pictures per second of stream (25 when every tick had its frame)."""
        if self.ticks_emitted == 0:
            return float(FPS)
        return FPS * (self.ticks_emitted - self.stale_ticks) / self.ticks_emitted


class SessionClock:
    """Emits one session's ticks to its sink and subscribers. ``run`` is the clock thread's body.

    ``on_tick(playhead)`` is called after every tick with the new playhead (the next frame to
    emit): the session uses it to wake the producer.
    """

    def __init__(
        self,
        clock: Clock,
        frames: FrameQueue,
        schedule: SpeechSchedule,
        sink: TickWriter,
        subscribers: Subscribers,
        still: np.ndarray,
        out_rate: int,
        on_tick: Callable[[int], None],
    ) -> None:
        self._clock = clock
        self._frames = frames
        self._schedule = schedule
        self._sink = sink
        self._subscribers = subscribers
        self._previous = still
        self._out_rate = out_rate
        self._on_tick = on_tick
        self.t0 = 0.0
        self.preroll_frames = 0
        self.playhead = 0
        self.counters = TickCounters()

    def start_at(self, t0: float, preroll_frames: int) -> None:
        """Frame n is due at ``t0`` + n/25; the first ``preroll_frames`` ticks are never stale."""
        self.t0 = t0
        self.preroll_frames = preroll_frames

    @property
    def deadlines(self) -> TickDeadlines:
        """When each frame is due: the one source of truth for the producer and the workers."""
        return TickDeadlines(self.t0, FPS)

    def deadline(self, index: int) -> float:
        return self.deadlines.of(index)

    def run(self, stop: threading.Event) -> bool:
        """Tick until the schedule's end frame (True: the stream is complete) or ``stop`` (False)."""
        while True:
            end = self._schedule.end_frame
            if end is not None and self.playhead >= end:
                return True
            if self._clock.wait_until(self.deadline(self.playhead), stop) or stop.is_set():
                return False
            self.tick()

    def tick(self) -> VideoFrame:
        """Emit tick ``playhead`` now, whatever the time: frame or repeat, audio, sink, subscribers."""
        n = self.playhead
        c = self.counters
        frame = self._frames.take(n)
        if frame is None:
            speech = self._schedule.is_speech_frame(n)
            frame = VideoFrame(n, self._previous, speech=speech)
            if n >= self.preroll_frames:
                c.stale_ticks += 1
                c.stale_speech_ticks += speech
                c.stale_run += 1
                c.longest_stale_run = max(c.longest_stale_run, c.stale_run)
        else:
            c.stale_run = 0
        self._previous = frame.image
        audio = AudioSlice(n, self._schedule.output_slice(n), self._out_rate)
        self._sink.write(frame, audio)
        self._subscribers.publish(frame, audio)
        self.playhead = n + 1
        c.ticks_emitted = n + 1
        c.speech_frames_emitted += int(frame.speech)
        self._on_tick(n + 1)
        return frame
