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


MISS_EWMA = 0.05
"""Weight of each wanted frame in the running share of wanted frames that missed their tick."""
THIN_ABOVE = 0.3
"""One frame more between rendered ones once this share of the wanted frames missed."""
THICKEN_BELOW = 0.02
THICKEN_AFTER = 50
"""Back to a denser stride after this many wanted frames at it with (almost) no miss."""


@dataclass(slots=True)
class LatePolicy:
    """Per stream: skip a frame when ``now + estimate`` is past its deadline.

    The estimate of one render is a moving average of the wall time between consecutive
    decisions of rendered frames (wall, not CPU, time: under contention what matters is when the
    frame is done). At most ``max_skip_run`` such frames are skipped in a row, so even a wildly
    wrong estimate cannot freeze the picture for longer than that: past it, a frame that might
    still make its tick is rendered. A frame already past its deadline is always skipped
    (rendering it could only produce a picture the clock has no tick left for).

    Thinning, when the decisions carry frame indices: skipping only what cannot make it leaves
    the pictures in bursts under a lasting overload — a stream renders a few frames in a row when
    its worker gets to it, then misses a run while the other streams have their turn (measured at
    1.5x capacity with a noisy neighbour: frozen runs of 600-760 ms at 6-7 pictures/s). Once a
    third of the wanted frames miss, the stream wants a frame only ``stride`` frames after the
    last one it rendered (up to ``max_stride``), leaving those between out before trying: the
    render time saved is what makes the frames it does render on time, so the picture rate comes
    evenly spaced (measured: 320/400 ms longest repeats instead of 600/760 ms). After
    ``THICKEN_AFTER`` wanted frames with next to no miss it steps back towards every frame. A
    stream that goes back in time (a rewind on barge-in) wants its next frame at once. Motion is
    untouched either way, so the rendered pictures are the ones a stream that skips nothing makes.
    """

    max_skip_run: int = 4
    estimate_s: float = RENDER_ESTIMATE_S
    skipped: int = 0
    skip_run: int = 0
    render_started: float | None = None
    max_stride: int = 4
    stride: int = 1
    miss_share: float = 0.0
    since_change: int = 0
    thinned: int = 0
    """Frames left out by the stride (also counted in ``skipped``)."""
    last_rendered: int = -(1 << 62)

    def begin(self) -> None:
        """A new push starts: the time since the last decision is not a render."""
        self.render_started = None

    def end(self, now: float) -> None:
        """The push is over: its last rendered frame's time counts too."""
        self._measure(now)
        self.render_started = None

    def decide(self, now: float, deadline: float, index: int | None = None) -> bool:
        """True = skip the frame due at ``deadline`` (advance motion, render nothing). ``index``
        (the frame's timeline index) enables thinning; without it every frame is wanted."""
        self._measure(now)
        if index is not None and 0 < index - self.last_rendered < self.stride:
            self.thinned += 1
            self.skipped += 1
            return True
        done_by = now + self.estimate_s * (1.0 + SAFETY) + SAFETY_S
        skip = now >= deadline or (done_by >= deadline and self.skip_run < self.max_skip_run)
        if index is not None:
            self._adapt(skip)
        if skip:
            self.skip_run += 1
            self.skipped += 1
            return True
        self.skip_run = 0
        self.render_started = now
        if index is not None:
            self.last_rendered = index
        return False

    def _adapt(self, missed: bool) -> None:
        self.miss_share += MISS_EWMA * (float(missed) - self.miss_share)
        self.since_change += 1
        if self.miss_share > THIN_ABOVE and self.stride < self.max_stride:
            self.stride += 1
        elif self.stride > 1 and self.since_change >= THICKEN_AFTER and self.miss_share < THICKEN_BELOW:
            self.stride -= 1
        else:
            return
        self.miss_share = 0.0
        self.since_change = 0

    def _measure(self, now: float) -> None:
        if self.render_started is not None:
            self.estimate_s += EWMA * (max(0.0, now - self.render_started) - self.estimate_s)
            self.render_started = None
