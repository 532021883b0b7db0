"""Both session kinds behind one contract (``server.session.base.SessionLike``).

A whole-audio ``/stream`` render is registered next to live sessions: ``/metrics`` must keep
answering while it renders (it used to 500 on the live session's attributes), and the real-time
routes — which only a live session serves — answer 409 for it, and for a live session once it has
finished, instead of 500.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.api import feed, init_session, wait_status
from tests.support.engines import ProbeEngine
from tests.support.media import wav_bytes
from tests.support.processes import metric_values, probe_app

API = "/api/audio-driven/chunked"
OFFER = {"sdp": "v=0\r\n", "type": "offer"}


def _control(info: dict) -> dict[str, str]:
    """The session's control credential, when the server issues one (``session_token``)."""
    token = info.get("session_token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    # 2 ms per frame: a 6 s clip (150 frames) renders for ~0.3 s or more — long enough to probe it
    engine = ProbeEngine(cost_s=0.002)
    with probe_app(tmp_path_factory.mktemp("kinds"), engine=engine, rate_limit_per_s=0) as (client, _, _):
        yield client


def _start_render(client: httpx.Client, face: bytes) -> dict:
    r = client.post(
        "/api/audio-driven/stream",
        files={"image": ("face.jpg", face, "image/jpeg"), "audio": ("a.wav", _tone(6.0), "audio/wav")},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_metrics_answer_while_a_progressive_render_runs(app_client, sample_face_path) -> None:
    info = _start_render(app_client, sample_face_path.read_bytes())
    sid = info["session_id"]
    seen_rendering = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = app_client.get(f"{API}/status/{sid}").json()
        metrics = app_client.get("/metrics")
        assert metrics.status_code == 200, metrics.text
        values = metric_values(metrics.text)
        assert values["facestream_sessions"] >= 1
        if status["status"] in ("draining", "streaming"):
            seen_rendering = True
        if status["status"] == "complete":
            break
        time.sleep(0.02)
    assert seen_rendering, "the render finished before /metrics could be asked during it"
    assert wait_status(app_client, sid, "complete", 30)["status"] == "complete"
    after = metric_values(app_client.get("/metrics").text)
    assert after["facestream_frames_rendered_total"] >= 150  # the render's frames are counted


def _realtime_statuses(client: httpx.Client, sid: str, headers: dict[str, str]) -> dict[str, int]:
    with client.stream("GET", f"{API}/events/{sid}", headers=headers) as sse:
        events = sse.status_code
    return {
        "interrupt": client.post(f"{API}/interrupt/{sid}", headers=headers).status_code,
        "events": events,
        "webrtc": client.post(f"{API}/webrtc/{sid}", json=OFFER, headers=headers).status_code,
        "feed": feed(client, sid, _tone(0.2)).status_code,
    }


def _ws_close_code(client: httpx.Client, sid: str, info: dict) -> int | None:
    url = str(client.base_url).replace("http://", "ws://") + f"{API}/ws/{sid}"
    with connect(url, additional_headers=_control(info), open_timeout=10) as ws:
        try:
            while True:
                ws.recv(timeout=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


def test_realtime_routes_on_a_progressive_render_answer_409(app_client, sample_face_path) -> None:
    info = _start_render(app_client, sample_face_path.read_bytes())
    sid = info["session_id"]
    statuses = _realtime_statuses(app_client, sid, _control(info))
    assert statuses == dict.fromkeys(statuses, 409), statuses
    assert _ws_close_code(app_client, sid, info) == 4409
    assert app_client.get("/metrics").status_code == 200


def test_realtime_routes_on_a_finished_live_session_answer_409(app_client, sample_face_path) -> None:
    info = init_session(app_client, sample_face_path.read_bytes())
    sid = info["session_id"]
    assert feed(app_client, sid, _tone(0.3), final=True).status_code == 200
    assert wait_status(app_client, sid, "complete", 30)["status"] == "complete"
    statuses = _realtime_statuses(app_client, sid, _control(info))
    assert statuses == dict.fromkeys(statuses, 409), statuses
    assert _ws_close_code(app_client, sid, info) == 4409
