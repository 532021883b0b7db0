"""InferenceExecutor: the bounded pool of threads that runs every engine push, earliest deadline first.

Why not a plain ThreadPoolExecutor: with many sessions on few cores a FIFO queue lets a session
whose next frame is due in 10 ms wait behind one that has 300 ms to spare. Jobs carry the deadline
of the first frame they produce and workers always take the earliest one, which is what keeps
p99 lateness low near capacity. Batch work (issue 4) submits with a late deadline so live
sessions go first. Each session has at most one job queued or running (its producer pump), which
bounds the queue at ``max_jobs`` and preserves per-session order.

``blocking`` is a separate small pool for decode, resample and face analysis; its threads run
at a lower OS priority (nice +5, per thread on Linux) so that bursts of uploads slow down uploads,
not live frames.

GIL switch interval: a render is ~100 short GIL-releasing array calls (numpy, OpenCV); each time
it wants the GIL back while a pure-Python thread (audio→motion, clocks, the event loop) holds it,
CPython makes it wait up to the switch interval (5 ms by default). With many sessions those
waits add up to tens of ms per frame (the "convoy effect"). The executor lowers the interval to
``LIVE_SWITCH_INTERVAL_S`` (process-wide; never raises a smaller value someone chose).

Lanes: a stream that lives in one engine worker process (``models.engines.base.PinnedToWorker``,
the CPU engine's streams) can only advance when *that* worker is free: the worker serves one
request at a time. On the shared pool, two threads could both wait on worker 0 while worker 1
sat idle with work queued for it — measured at 8 live sessions on 2 cores (issue 14), the cores
idled while frames missed their ticks. So ``lanes=k`` adds k lanes, one thread and one
earliest-deadline heap each, and jobs submitted with ``lane=i`` run on lane ``i``: every worker
process has exactly one thread feeding it, in deadline order, and is never left idle while a
job for it waits. Jobs without a lane (in-process engines, whole-audio renders of such engines)
use the shared pool as before. ``max_jobs`` bounds all heaps together.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("facestream.inference")

LIVE_SWITCH_INTERVAL_S = 0.0005
"""Measured on the 2-core box with two render threads beside two Python-busy threads: per-frame
p99 64–88 ms vs 79–195 ms at the default 5 ms, and ~15 % more frames per CPU second."""


def _lower_priority(niceness: int) -> None:
    with contextlib.suppress(Exception):  # not Linux, or not permitted: run at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


class _Lane:
    """One earliest-deadline heap and the threads that drain it."""

    def __init__(self, name: str, threads: int, owner: InferenceExecutor) -> None:
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.cond = threading.Condition(owner._lock)  # one lock for all lanes, a condition each
        self._owner = owner
        self.threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(threads)
        ]
        for t in self.threads:
            t.start()

    def _work(self) -> None:
        cond = self.cond
        while True:
            with cond:
                while not self.heap and not self._owner.closing:
                    cond.wait()
                if not self.heap:
                    return
                _, _, job = heapq.heappop(self.heap)
            try:
                job()
            except Exception:  # the job owns its errors; this is only a last line of defence
                log.exception("inference job failed")


class InferenceExecutor:
    def __init__(self, workers: int, max_jobs: int = 1024, blocking_workers: int = 2, lanes: int = 0) -> None:
        """``workers`` threads share the lane-less jobs; ``lanes`` dedicated single-thread lanes
        serve jobs pinned to one engine worker process each (see the module docstring)."""
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if lanes < 0:
            raise ValueError("lanes must be >= 0")
        self.workers = workers
        self.max_jobs = max_jobs
        if sys.getswitchinterval() > LIVE_SWITCH_INTERVAL_S:
            sys.setswitchinterval(LIVE_SWITCH_INTERVAL_S)
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._closing = False
        self._shared = _Lane("inference", workers, self)
        self._lanes = [_Lane(f"inference-lane{i}", 1, self) for i in range(lanes)]
        self.blocking = ThreadPoolExecutor(
            max_workers=blocking_workers,
            thread_name_prefix="blocking",
            initializer=_lower_priority,
            initargs=(5,),
        )

    @property
    def closing(self) -> bool:
        """Set once by ``close``; lanes drain what is queued, then their threads return."""
        return self._closing

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    def submit(self, deadline: float, job: Callable[[], None], lane: int | None = None) -> None:
        """Run ``job`` on a worker; jobs with earlier ``deadline`` (monotonic seconds) run first.
        ``lane``: the engine worker process the job drives (its own lane; ``lane`` modulo the lane
        count, the shared pool when there are no lanes)."""
        with self._lock:
            if self._closing:
                raise RuntimeError("inference executor is closed")
            heaps = [self._shared.heap, *(lane_.heap for lane_ in self._lanes)]
            if sum(len(h) for h in heaps) >= self.max_jobs:
                raise RuntimeError(f"inference queue full ({self.max_jobs} jobs)")
            target = self._shared if lane is None or not self._lanes else self._lanes[lane % len(self._lanes)]
            heapq.heappush(target.heap, (deadline, next(self._seq), job))
            target.cond.notify()

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._shared.heap) + sum(len(lane.heap) for lane in self._lanes)

    @property
    def blocking_queued(self) -> int:
        """Jobs waiting for a thread of the ``blocking`` pool (a queue-depth metric)."""
        return self.blocking._work_queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Finish queued jobs, stop and join the workers."""
        with self._lock:
            self._closing = True
            for lane in (self._shared, *self._lanes):
                lane.cond.notify_all()
        for t in [*self._shared.threads, *(t for lane in self._lanes for t in lane.threads)]:
            t.join(timeout)
        self.blocking.shutdown(wait=True, cancel_futures=True)
