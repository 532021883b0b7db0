"""Whether a frame about to be rendered can still make its tick: pure logic, so it runs where the
frame is made.

Why here, and pure: the server decides per frame to skip renders that would finish after their
tick (``server.session.producer``). When the stream lives in an engine worker process, asking
the server for every frame costs a round trip through the server's interpreter lock — under load
exactly when it is busiest, with the worker idle meanwhile (issue 14). The decision needs only
the time, the frame's deadline and a little state, all of which cross the process boundary: the
deadlines are on ``CLOCK_MONOTONIC``, which every process on the host shares, so the worker
decides with its own ``time.monotonic()`` and hands the updated state back with the frames.
"""

from __future__ import annotations

from dataclasses import dataclass

RENDER_ESTIMATE_S = 0.006
"""Starting estimate of one frame's render (wall) time, before the stream has measured its own."""
EWMA = 0.2
SAFETY = 0.1
SAFETY_S = 0.002
"""A frame must be expected done by its deadline with this margin (relative, absolute): one that
finishes just after its tick is as invisible as one never rendered, but cost its CPU."""


@dataclass(frozen=True, slots=True)
class TickDeadlines:
    """Frame ``n`` is due at ``t0 + n / fps`` (``time.monotonic`` seconds): a session clock's
    ticks (``server.session.clock.SessionClock.deadlines``), small enough to cross to a worker."""

    t0: float
    fps: int

    def of(self, index: int) -> float:
        return self.t0 + index / self.fps


@dataclass(slots=True)
class LatePolicy:
    """Per stream: skip a frame when ``now + estimate`` is past its deadline.

    The estimate of one render is a moving average of the wall time between consecutive
    decisions of rendered frames (wall, not CPU, time: under contention what matters is when the
    frame is done). At most ``max_skip_run`` such frames are skipped in a row, so even a wildly
    wrong estimate cannot freeze the picture for longer than that: past it, a frame that might
    still make its tick is rendered. A frame already past its deadline is always skipped
    (rendering it could only produce a picture the clock has no tick left for).
    """

    max_skip_run: int = 4
    estimate_s: float = RENDER_ESTIMATE_S
    skipped: int = 0
    skip_run: int = 0
    render_started: float | None = None

    def begin(self) -> None:
        """A new push starts: the time since the last decision is not a render."""
        self.render_started = None

    def end(self, now: float) -> None:
        """The push is over: its last rendered frame's time counts too."""
        self._measure(now)
        self.render_started = None

    def decide(self, now: float, deadline: float) -> bool:
        """True = skip the frame due at ``deadline`` (advance motion, render nothing)."""
        self._measure(now)
        done_by = now + self.estimate_s * (1.0 + SAFETY) + SAFETY_S
        if now >= deadline or (done_by >= deadline and self.skip_run < self.max_skip_run):
            self.skip_run += 1
            self.skipped += 1
            return True
        self.skip_run = 0
        self.render_started = now
        return False

    def _measure(self, now: float) -> None:
        if self.render_started is not None:
            self.estimate_s += EWMA * (max(0.0, now - self.render_started) - self.estimate_s)
            self.render_started = None
