"""Virtual time for session tests: ``SteppedClock`` (a ``server.session.clock.Clock``) and job
runners for the producer, so a unit test steps a live session tick by tick without sleeping.

``SteppedClock.wait_until`` parks the clock thread until the test grants ticks with ``step(k)``;
each granted wait moves virtual time to its deadline (never backwards), and ``step`` returns once
the thread is parked at the next wait, so after ``step(k)`` exactly k more ticks were emitted.
``advance(dt)`` moves time on by itself (a render that "takes" dt).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SteppedClock:
    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._grants = 0
        self._parked = False
        self._waiting_for = float("inf")
        self.waits = 0

    def now(self) -> float:
        with self._cond:
            return self._now

    def advance(self, dt: float) -> None:
        with self._cond:
            self._now += dt

    def wait_until(self, deadline: float, stop: threading.Event) -> bool:
        with self._cond:
            self._parked = True
            self._waiting_for = deadline
            self._cond.notify_all()
            while self._grants == 0 and not stop.is_set():
                self._cond.wait(0.01)
            self._parked = False
            if stop.is_set():
                self._cond.notify_all()
                return True
            self._grants -= 1
            self.waits += 1
            self._now = max(self._now, deadline)
            return False

    def step(self, ticks: int = 1, timeout: float = 10.0, done: Callable[[], bool] | None = None) -> None:
        """Let the clock thread pass ``ticks`` waits and park at the next one (or until ``done()``
        is true, e.g. the session completed and its clock thread will not wait again)."""
        with self._cond:
            self._grants += ticks
            self._cond.notify_all()
            self._wait(lambda: (self._grants == 0 and self._parked) or (done is not None and done()), timeout)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Poll ``predicate`` under the lock (``done`` may turn true without a notify)."""
        end = time.monotonic() + timeout
        while not predicate():
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("the session clock did not reach the expected point in time")
            self._cond.wait(min(left, 0.01))

    def catch_up(self, timeout: float = 10.0) -> int:
        """Emit every tick whose deadline has passed (time does not move); returns how many. Called
        from a job that "takes" time (``advance``), this is the clock ticking while it computes."""
        n = 0
        while True:
            with self._cond:
                self._wait(lambda: self._parked and self._grants == 0, timeout)
                if self._waiting_for > self._now:
                    return n
            self.step(1, timeout)
            n += 1

    def wait_parked(self, timeout: float = 10.0) -> None:
        """Until the clock thread waits for its next tick (e.g. right after the session started)."""
        with self._cond:
            self._wait(lambda: self._parked and self._grants == 0, timeout)


class InlineRunner:
    """Runs every pump job at once, on the submitting thread: the producer always keeps up."""

    def __init__(self) -> None:
        self.deadlines: list[float] = []

    def submit(self, deadline: float, job: Callable[[], None], lane: int | None = None) -> None:
        self.deadlines.append(deadline)
        job()


class HeldRunner:
    """Holds pump jobs until the test runs them (``run_pending``): compute that falls behind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: list[tuple[float, Callable[[], None]]] = []

    def submit(self, deadline: float, job: Callable[[], None], lane: int | None = None) -> None:
        with self._lock:
            self._jobs.append((deadline, job))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._jobs)

    def run_pending(self) -> int:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for _, job in sorted(jobs, key=lambda j: j[0]):
            job()
        return len(jobs)

    def close_session(self, close: Callable[[], None], timeout: float = 10.0) -> None:
        """Call ``close`` (which waits for the producer to go idle) while running what it waits on."""
        closer = threading.Thread(target=close, name="closer")
        closer.start()
        end = time.monotonic() + timeout
        while closer.is_alive() and time.monotonic() < end:
            self.run_pending()
            closer.join(0.01)
        if closer.is_alive():
            raise TimeoutError("close did not return")
