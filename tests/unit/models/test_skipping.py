"""LatePolicy on virtual time: which frames a live stream leaves out when it runs late."""

from __future__ import annotations

import itertools

from models.engines.skipping import LatePolicy

TICK_S = 0.04


def test_with_time_to_spare_every_frame_is_rendered() -> None:
    policy = LatePolicy()
    now = 0.0
    for _ in range(200):
        assert not policy.decide(now, now + 0.1)
        now += 0.004
    assert policy.skipped == 0


def test_a_frame_past_its_deadline_is_always_skipped() -> None:
    policy = LatePolicy(max_skip_run=2)
    assert all(policy.decide(1.0 + n * TICK_S, 0.5) for n in range(10))  # the run cap does not apply
    assert policy.skipped == 10
    assert not policy.decide(2.0, 2.5)  # in time again: rendered, the run is over
    assert policy.skip_run == 0


def test_the_estimate_follows_the_measured_render_time() -> None:
    policy = LatePolicy()
    now = 0.0
    for _ in range(60):
        assert not policy.decide(now, now + 1.0)
        now += 0.030  # each render takes 30 ms of wall time
    assert abs(policy.estimate_s - 0.030) < 0.001
    assert policy.decide(now, now + 0.025)  # would finish after its tick: skipped
    assert not policy.decide(now, now + 0.040)


def test_a_wrong_estimate_cannot_freeze_the_picture() -> None:
    policy = LatePolicy(estimate_s=10.0)  # every frame looks too slow to make it
    decisions = [policy.decide(n * TICK_S, n * TICK_S + 0.05) for n in range(50)]
    runs = [len(list(g)) for skip, g in itertools.groupby(decisions) if skip]
    assert max(runs) <= policy.max_skip_run


def _overloaded_worker(
    thin: bool, streams: int = 4, render_s: float = 0.02, frames: int = 600
) -> list[list[int]]:
    """Virtual time: ``streams`` sessions share one worker in earliest-deadline jobs, each job
    rendering what lies inside a 160 ms horizon (as the producer does); a render costs
    ``render_s`` and a skip 1.5 ms (motion only). Returns the indices each session showed."""
    horizon, motion_s = 0.16, 0.0015
    policies = [LatePolicy() for _ in range(streams)]
    phase = [k * TICK_S / streams for k in range(streams)]
    following = [0] * streams
    shown: list[list[int]] = [[] for _ in range(streams)]
    now = 0.0
    while min(following) < frames:
        # a session has a job once its next two frames lie inside the horizon
        pending = [k for k in range(streams) if following[k] < frames]
        starts = {k: (following[k] + 1) * TICK_S + phase[k] - horizon for k in pending}
        ready = [k for k, at in starts.items() if at <= now]
        if not ready:
            now = min(starts.values())
            continue
        k = min(ready, key=lambda s: following[s] * TICK_S + phase[s])
        policy = policies[k]
        policy.begin()
        last = min(int((now - phase[k] + horizon) / TICK_S), frames - 1)
        while following[k] <= last:
            n = following[k]
            deadline = n * TICK_S + phase[k]
            skip = policy.decide(now, deadline, n if thin else None)
            now += motion_s if skip else render_s
            if not skip and now <= deadline:
                shown[k].append(n)
            following[k] += 1
        policy.end(now)
    return shown


def _longest_gaps(shown: list[list[int]]) -> list[int]:
    return [max(b - a for a, b in itertools.pairwise(s)) for s in shown]


def test_a_lasting_overload_thins_frames_evenly_instead_of_in_bursts() -> None:
    # 4 sessions x (20 ms render + 1.5 ms motion) per 40 ms tick: over twice what the worker has
    bursty, thinned = _overloaded_worker(thin=False), _overloaded_worker(thin=True)
    long_bursty = sum(b - a > 5 for s in bursty for a, b in itertools.pairwise(s))
    long_thinned = sum(b - a > 5 for s in thinned for a, b in itertools.pairwise(s))
    assert long_bursty > 100 and long_thinned <= 5, (long_bursty, long_thinned)  # > 200 ms repeats
    assert sum(map(len, thinned)) >= sum(map(len, bursty))  # no fewer pictures for it


def test_thinning_leaves_out_frames_before_trying_and_steps_back_when_frames_make_it() -> None:
    policy = LatePolicy()
    n = 0
    while policy.stride == 1:  # every wanted frame already late
        assert policy.decide(1.0 + n * TICK_S, 0.5, n)
        n += 1
        assert n < 40
    assert policy.stride == 2 and policy.thinned == 0
    now = 10.0
    decisions = []
    for _ in range(2 * 60):  # plenty of time from now on
        decisions.append(policy.decide(now, now + 1.0, n))
        now, n = now + 0.004, n + 1
    assert decisions[:2] == [False, True]  # rendered, then the next one left out by the stride
    assert policy.thinned > 0 and policy.stride == 1
    assert not any(decisions[-10:])  # every frame again


def test_no_thinning_without_indices_or_with_time_to_spare() -> None:
    policy = LatePolicy()
    for n in range(200):
        policy.decide(1.0 + n * TICK_S, 0.5)  # late, but no index: nothing to thin by
    assert policy.stride == 1
    spare = LatePolicy()
    now = 0.0
    for n in range(500):
        assert not spare.decide(now, now + 0.1, n)
        now += 0.004
    assert spare.stride == 1 and spare.thinned == 0


def test_a_rewound_stream_wants_its_next_frame_at_once() -> None:
    policy = LatePolicy()
    n = 0
    while policy.stride == 1:
        policy.decide(1.0 + n * TICK_S, 0.5, n)
        n += 1
    assert not policy.decide(100.0, 101.0, n)  # rendered: the stride counts from here
    assert policy.decide(100.0, 101.0, n + 1)  # thinned
    assert not policy.decide(100.0, 101.0, n - 3)  # barge-in rewound the timeline: no wait
