"""FacestreamVideoService in remote mode: a real facestream server (uvicorn on loopback, CPU
engine) renders; the Pipecat pipeline in .venv-agent sends TTS audio over the WebSocket ingest
and receives the session over WebRTC (a receive-only aiortc peer, loopback ICE).

Same script and sink as the in-process test (tests/integration/agent_probes/pipecat_probe.py).
The checks are looser where WebRTC decides, because on a loaded 2-core machine aiortc's receiver
drops video frames (it decodes in Python next to the server's encoder and engine): half of
utterance A's frames must arrive carrying its audio, the lip gap is correlated at the best lag
within ±2 frames over the frames that arrived, the interruption (up the socket, back over RTP)
must leave the face idle within 1 s, and the first speech frame of the streamed utterance must
show within 1.5 s of its first chunk. These bound a working path, not its speed: on an idle
machine the figures are the server's lead + ~50 ms; loaded, aiortc's receive side dominates
(the figures are printed).
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
    images = remote_run["images"]
    rate = (len(images) - 1) / (images[-1]["t"] - images[0]["t"])
    assert rate >= 10, f"{rate:.1f} frames/s received"
    b_start = remote_run["b_chunk_pushes"][0]
    a = [im for im in images if im["audio"] and remote_run["a_pushed"] <= im["t"] < b_start]
    expected = remote_run["a_seconds"] * checks.FPS
    print(f"remote A: {len(a)} of {expected:.0f} speech frames arrived with their audio; {rate:.1f} fps")
    assert len(a) >= 0.5 * expected
    audio = {round(x["pts_s"], 3): x for x in remote_run["audio"]}
    gap = np.array([im["gap"] for im in a])
    loud = np.array([audio[round(im["pts_s"], 3)]["rms"] for im in a])
    assert not np.isnan(gap).any()
    r, lag = _best_lag_r(gap, loud, range(-2, 3))
    print(f"remote A: r={r:.3f} at lag {lag}")
    assert r >= 0.6


@pytest.mark.slow
def test_remote_interruption_and_idle(remote_run):
    sent = remote_run["interrupt_sent"]
    after = [im for im in remote_run["images"] if im["t"] > sent]
    idle = next(im for im in after if not im["audio"] and im["gap"] < checks.CLOSED_GAP)
    wall = idle["t"] - sent
    print(f"remote: idle {wall * 1000:.0f} ms after InterruptionFrame")
    assert wall <= 1.0
    assert not any(im["audio"] for im in after if im["t"] > idle["t"] + 0.3)
    assert sum(not im["audio"] for im in remote_run["images"]) >= checks.FPS  # idle in silence


@pytest.mark.slow
def test_remote_streamed_latency(remote_run):
    b_start = remote_run["b_chunk_pushes"][0]
    first = next(im for im in remote_run["images"] if im["audio"] and im["t"] > b_start)
    latency = first["t"] - b_start
    print(f"remote: first chunk in -> its frame out (WS up, WebRTC back) {latency * 1000:.0f} ms")
    assert latency <= 1.5
