"""FacestreamVideoService in remote mode: a real facestream server (uvicorn on loopback, CPU
engine) renders; the Pipecat pipeline in .venv-agent sends TTS audio over the WebSocket ingest
and receives the session over WebRTC (a receive-only aiortc peer, loopback ICE).

Same script and sink as the in-process test (tests/integration/agent_probes/pipecat_probe.py).
The checks are looser where WebRTC decides: audio and image arrive on separate tracks and are
paired by arrival, so the lip gap is correlated at the best lag within ±2 frames and a speech
frame count within ±3; the interruption travels up the socket and back over RTP.
"""

from __future__ import annotations

import numpy as np
import pytest

from server.app import create_app
from server.settings import Settings
from tests.integration import avatar_checks as checks
from tests.support.agent import run_probe
from tests.support.servers import live_server


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory) -> dict:
    settings = Settings(storage_dir=tmp_path_factory.mktemp("remote"), webrtc_allow_loopback=True)
    with live_server(create_app(settings)) as url:
        return run_probe("tests.integration.agent_probes.pipecat_probe", "--remote", url)


def _best_lag_r(gap: np.ndarray, loud: np.ndarray, lags: range) -> tuple[float, int]:
    best = (-1.0, 0)
    for k in lags:
        a, b = (gap[k:], loud[: len(loud) - k]) if k >= 0 else (gap[:k], loud[-k:])
        best = max(best, (float(np.corrcoef(a, b)[0, 1]), k))
    return best


@pytest.mark.slow
def test_remote_frames_follow_the_speech(remote_run):
    segments = checks.speech_segments(remote_run["images"])
    speech = [im for im in remote_run["images"] if im["audio"]]
    expected = remote_run["a_seconds"] * checks.FPS
    a = [im for im in speech if im["t"] < remote_run["a_pushed"] + remote_run["a_seconds"] + 1.0]
    assert abs(len(a) - expected) <= 3, f"{len(a)} speech frames for {expected:.0f} ({len(segments)} runs)"
    audio = {round(x["pts_s"], 3): x for x in remote_run["audio"]}
    gap = np.array([im["gap"] for im in a])
    loud = np.array([audio[round(im["pts_s"], 3)]["rms"] for im in a])
    assert not np.isnan(gap).any()
    r, lag = _best_lag_r(gap, loud, range(-2, 3))
    print(f"remote A: {len(a)} speech frames, r={r:.3f} at lag {lag}")
    assert r >= 0.6


@pytest.mark.slow
def test_remote_interruption_and_idle(remote_run):
    sent = remote_run["interrupt_sent"]
    after = [im for im in remote_run["images"] if im["t"] > sent]
    idle = next(im for im in after if not im["audio"] and im["gap"] < checks.CLOSED_GAP)
    wall = idle["t"] - sent
    print(f"remote: idle {wall * 1000:.0f} ms after InterruptionFrame")
    assert wall <= 0.3
    assert not any(im["audio"] for im in after if im["t"] > idle["t"] + 0.2)
    checks.check_idle_flow(remote_run)


@pytest.mark.slow
def test_remote_streamed_latency(remote_run):
    lat = checks.streamed_latencies(remote_run)
    p50, p90 = np.percentile(lat, [50, 90])
    print(
        f"remote audio in -> image out (WS up, WebRTC back): p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms"
    )
    assert p50 <= 0.45
