"""LL-HLS in the browser: the page's live-sync logic in node, an LL session played by hls.js in real
headless Chromium against a real server (FACESTREAM_HLS_MODE=ll, the default), and the freeze
analysis of the latency benchmark on a made-up page log. Skipped with a reason when
node, playwright-core or Chromium is missing, except under CI=true, where that is a failure."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.browser import browser_tools_missing, run_node, running_server

pytestmark = [pytest.mark.browser]


def _require(missing: str | None) -> None:
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI=true: {missing}")
        pytest.skip(missing)


def test_live_sync_rate_decisions() -> None:
    _require(None if shutil.which("node") else "node is not installed")
    result = run_node(["--test", "tests/e2e/browser/llhls-units.test.mjs"], {}, 60)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-4000:]}"


@pytest.mark.slow
def test_ll_session_plays_in_headless_chromium() -> None:
    _require(browser_tools_missing())
    with running_server({"FACESTREAM_HLS_MODE": "ll"}) as url:
        args = ["--test", "--test-reporter=spec", "tests/e2e/browser/llhls.test.mjs"]
        result = run_node(args, {"FACESTREAM_TEST_URL": url}, 120)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-4000:]}"


def _g2g_llhls():
    import importlib.util

    from tests.support.browser import ROOT

    path = ROOT / "benchmarks" / "glass_to_glass_llhls.py"
    spec = importlib.util.spec_from_file_location("g2g_llhls", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_player_log_classifies_freezes_by_their_cause() -> None:
    """The freeze analysis (benchmarks/glass_to_glass_llhls.py ``player_summary``) on a made-up page
    log: frames every 40 ms with three pauses — one with the buffer empty and parts arriving 1.5 s
    apart (starved), one with 0.5 s buffered (stuck: the player), one during a seek."""
    g2g = _g2g_llhls()
    shown, t = [], 1000.0
    for i in range(300):
        t += 40 + (1500 if i == 100 else 400 if i == 200 else 300 if i == 250 else 0)
        shown.append({"index": i, "shownAt": t})
    freeze_at = [shown[i]["shownAt"] for i in (99, 199, 249)]
    samples = [{"at": float(a), "ahead": 0.5, "t": 0, "rate": 1, "ready": 4, "latency": 0.7, "target": 0.6}
               for a in range(1000, int(t), 100)]  # fmt: skip
    for s in samples:
        if freeze_at[0] - 300 < s["at"] <= freeze_at[0] + 10:
            s["ahead"] = 0.02
    arrivals = [*range(1000, int(freeze_at[0]) + 1, 200), *range(int(freeze_at[0]) + 1500, int(t), 200)]
    frags = [{"sn": k // 5, "part": k % 5, "start": a - 10.0, "end": float(a)}
             for k, a in enumerate(arrivals)]  # fmt: skip
    events = [{"type": "seeking", "at": freeze_at[2] + 50, "t": 0, "ahead": 0.4}]
    player = {"samples": samples, "events": events, "errors": [], "frags": frags, "playlists": []}
    run = {"records": shown, "clock": {"offsetMs": 0}, "frameTimes": {"frames": []}, "player": player}
    out = g2g.player_summary(run)
    assert out["freezes_over_200ms"] == 3, out
    assert (out["freezes_starved"], out["freezes_stuck"], out["freezes_seek"]) == (1, 1, 1), out
    assert out["longest_freeze_s"] == pytest.approx(1.54, abs=0.01)
    assert out["part_arrival_gap_max_s"] >= 1.5 and out["part_arrival_gaps_over_hold_back"] == 1
    starved = next(d for d in out["freeze_detail"] if d["kind"] == "starved")
    assert starved["part_gap_s"] >= 1.5
