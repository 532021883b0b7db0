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
