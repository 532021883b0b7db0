"""InferenceExecutor: earliest deadline first, and a lane per engine worker process.

Why lanes matter (issue 14): a job pinned to worker 0 waits while worker 0 is busy; on a shared
pool it would hold a thread that a job for idle worker 1 could have used. These tests block a
lane's job on an event and check that other lanes' jobs still run, in deadline order.
"""

from __future__ import annotations

import threading

import pytest

from server.compute.executor import InferenceExecutor


def test_shared_pool_runs_earliest_deadline_first() -> None:
    executor = InferenceExecutor(1)
    gate, order = threading.Event(), []
    try:
        executor.submit(0.0, gate.wait)  # holds the one thread while the others queue
        for deadline in (3.0, 1.0, 2.0):
            executor.submit(deadline, lambda d=deadline: order.append(d))
        gate.set()
    finally:
        executor.close()
    assert order == [1.0, 2.0, 3.0]


def test_a_busy_lane_never_holds_up_another_lane() -> None:
    executor = InferenceExecutor(1, lanes=2)
    held, ran = threading.Event(), threading.Event()
    order: list[str] = []
    try:
        executor.submit(0.0, lambda: held.wait(5), lane=0)  # worker 0 is busy
        executor.submit(0.5, lambda: order.append("lane0 later"), lane=0)
        executor.submit(2.0, lambda: (order.append("lane1 b"), ran.set()), lane=1)
        executor.submit(1.0, lambda: order.append("lane1 a"), lane=1)
        assert ran.wait(5), "lane 1 waited for lane 0's job"
        assert order == ["lane1 a", "lane1 b"]  # deadline order within the lane
        held.set()
    finally:
        executor.close()
    assert order[-1] == "lane0 later"


def test_jobs_without_a_lane_use_the_shared_pool() -> None:
    executor = InferenceExecutor(1, lanes=1)
    held, ran = threading.Event(), threading.Event()
    try:
        executor.submit(0.0, lambda: held.wait(5), lane=0)
        executor.submit(1.0, ran.set)  # no lane: not behind lane 0's job
        assert ran.wait(5)
        held.set()
    finally:
        executor.close()


def test_lane_numbers_wrap_and_no_lanes_means_shared() -> None:
    executor = InferenceExecutor(1, lanes=2)
    names: list[str] = []
    done = threading.Event()
    try:
        executor.submit(0.0, lambda: names.append(threading.current_thread().name), lane=3)
        executor.submit(1.0, lambda: (names.append(threading.current_thread().name), done.set()), lane=3)
        assert done.wait(5)
    finally:
        executor.close()
    assert names == ["inference-lane1-0", "inference-lane1-0"]
    plain = InferenceExecutor(1)
    try:
        done.clear()
        plain.submit(0.0, lambda: (names.append(threading.current_thread().name), done.set()), lane=5)
        assert done.wait(5)
    finally:
        plain.close()
    assert names[-1] == "inference-0"


def test_queue_bound_counts_every_lane_and_close_refuses_new_jobs() -> None:
    executor = InferenceExecutor(1, max_jobs=2, lanes=1)
    held = threading.Event()
    started = [threading.Event(), threading.Event()]

    def hold(k: int) -> None:
        started[k].set()
        held.wait(5)

    try:
        executor.submit(0.0, lambda: hold(0), lane=0)
        executor.submit(0.0, lambda: hold(1))
        assert all(e.wait(5) for e in started)  # both threads busy, both heaps empty
        executor.submit(1.0, lambda: None, lane=0)
        executor.submit(1.0, lambda: None)
        with pytest.raises(RuntimeError, match="queue full"):
            executor.submit(1.0, lambda: None, lane=0)
        held.set()
    finally:
        executor.close()
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(0.0, lambda: None)
