"""Admission from measurement (server.compute.capacity): the derivation and the real calibration."""

from __future__ import annotations

import pytest

from server.compute.capacity import MAX_PER_CORE, UTILISATION, calibrate, estimate, measure_encoder
from server.settings import Settings
from tests.support.engines import ProbeEngine


def test_estimate_divides_the_usable_cores_by_the_measured_cost_per_session() -> None:
    e = estimate(cores=2, engine_s_per_frame=0.004, encoder_s_per_frame=0.002)
    assert e.core_per_session == pytest.approx(25 * 0.006 + 0.05 + 0.02)
    assert e.max_sessions == int(2 * UTILISATION / e.core_per_session) == 6
    assert "2 cores" in e.derivation() and "4.00 ms" in e.derivation()
    assert estimate(2, 1.0, 0.0).max_sessions == 1  # never below one
    assert estimate(2, 0.0, 0.0).max_sessions == 2 * MAX_PER_CORE  # free engines hit the ceiling


def test_calibration_measures_a_real_engine_and_encoder() -> None:
    engine = ProbeEngine(size=128)
    e = calibrate(engine, "superfast", 2)
    assert e.encoder_ms_per_frame > 0  # a real x264 ran on the rendered frames
    assert 1 <= e.max_sessions <= 2 * MAX_PER_CORE
    again = calibrate(engine, "superfast", 2, utilisation=0.35)  # measured once per process
    assert again.engine_ms_per_frame == e.engine_ms_per_frame and again.max_sessions <= e.max_sessions


def test_a_slower_preset_costs_more_encoder_cpu() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (256, 256, 3), dtype=np.uint8) for _ in range(20)]
    assert measure_encoder(frames, "medium") > measure_encoder(frames, "ultrafast")


def test_settings_measure_admission_only_when_max_sessions_is_not_given(tmp_path) -> None:
    assert Settings(storage_dir=tmp_path).measure_admission
    assert not Settings(storage_dir=tmp_path, max_sessions=3).measure_admission
