"""Three real ``facestream serve`` nodes (CPU engine, max_sessions 3) behind a real HAProxy running
the shipped deploy/haproxy/haproxy.cfg, on loopback (README "Running more than one node").

Checked through the balancer: the seed's curl sequence (feed with ``?session_id=`` or the
``X-Facestream-Session`` header); the JS client; placement 3/3/3 and facestream's own 503 +
Retry-After once every node is full; each session's feeds (multipart and WebSocket) reach its node
(the owner, asked directly, holds exactly the speech fed); a node killed mid-stream → its sessions'
requests get a JSON 410 at once and its in-flight SSE stream ends, while the other six keep real
time, their playlists grow and their frames match their speech; a drained node takes no new
sessions while its live ones complete, then exits by itself; SIGUSR1 drains with a deadline; a node
added through HAProxy's runtime API takes new sessions; no node left → a JSON 503, never HTML.

Skips when HAProxy is missing (scripts/setup-haproxy.sh installs it), except under CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from realtime_streaming_client import AsyncRealtimeClient
from server.session.ids import node_of
from tests.support.api import feed, init_session, wait_status
from tests.support.browser import ROOT, run_node
from tests.support.cluster import (
    Cluster,
    haproxy_missing,
    running_cluster,
    runtime_api,
    start_node,
    wait_healthy,
)
from tests.support.media import wav_bytes
from tests.support.processes import last_segment, wait_until

NODES = ("n1", "n2", "n3")
MAX_SESSIONS = 3
SPEECH_S = 2.0
API = "/api/audio-driven/chunked"


@pytest.fixture(scope="module")
def cluster():
    missing = haproxy_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the cluster test cannot run under CI=true: {missing}")
        pytest.skip(missing)
    args = ["--max-sessions", str(MAX_SESSIONS), "--drain-timeout", "4"]
    with running_cluster(NODES, args) as c:
        yield c


@pytest.fixture(scope="module")
def speech(sample_speech_path) -> bytes:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    return wav_bytes(pcm[: int(SPEECH_S * rate)], rate)


@pytest.fixture(scope="module")
def pcm16(sample_speech_path) -> np.ndarray:
    pcm, rate = sf.read(sample_speech_path, dtype="int16")
    assert rate == 16000
    return pcm


async def _stream_over_websocket(url: str, sid: str, pcm: np.ndarray) -> None:
    async with AsyncRealtimeClient(url, sid, sample_rate=16000) as rt:
        await rt.stream(pcm, realtime=False)  # returns once the node answered every message


class _EventStream:
    """``GET …/events/<id>`` through the balancer, read in a thread until the stream ends."""

    def __init__(self, url: str) -> None:
        self.opened = threading.Event()
        self.ended_at = float("inf")
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()

    def _read(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(30.0)) as r:
                assert r.status_code == 200, r.status_code
                self.opened.set()
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError:
            pass  # the connection cut: what a dead node's stream should do
        finally:
            self.ended_at = time.monotonic()


def _json_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["status"] == "error", body
    return body["message"]


def test_seed_curl_sequence_through_the_balancer(cluster: Cluster, sample_face_path, speech, tmp_path):
    """init, feed (-F session_id=…), status, delete: the one change is ``?session_id=`` on the feed
    URL (or ``-H 'X-Facestream-Session: …'``), because a balancer cannot read a multipart body."""
    chunk = tmp_path / "chunk.wav"
    chunk.write_bytes(speech)
    curl = shutil.which("curl")

    def call(
        method: str, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ):
        form = form or {}
        if curl is None:  # the same requests without curl
            data = {k: v for k, v in form.items() if not v.startswith("@")}
            files = {
                k: (Path(v[1:]).name, Path(v[1:]).read_bytes()) for k, v in form.items() if v.startswith("@")
            }
            r = httpx.request(
                method, cluster.url + path, data=data, files=files or None, headers=headers, timeout=30
            )
            return r.status_code, r.json()
        cmd = [curl, "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method]
        for k, v in form.items():
            cmd += ["-F", f"{k}={v}"]
        for k, v in (headers or {}).items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run(
            [*cmd, cluster.url + path], capture_output=True, text=True, timeout=30, check=True
        )
        body, _, code = out.stdout.rpartition("\n")
        return int(code), json.loads(body)

    code, info = call("POST", f"{API}/init", {"image": f"@{sample_face_path}"})
    assert code == 200, info
    sid = info["session_id"]
    owner = cluster.nodes[node_of(sid)]
    code, fed = call("POST", f"{API}/feed?session_id={sid}", {"session_id": sid, "audio_chunk": f"@{chunk}"})
    assert code == 200 and fed["session_id"] == sid, fed
    code, fed = call(
        "POST", f"{API}/feed", {"session_id": sid, "audio_chunk": f"@{chunk}"}, {"X-Facestream-Session": sid}
    )
    assert code == 200, fed
    code, status = call("GET", f"{API}/status/{sid}")
    assert code == 200 and status["status"] == "streaming", status
    direct = httpx.get(f"{owner.url}{API}/status/{sid}").json()  # both chunks reached the owner
    assert direct["speech_seconds_accepted"] == pytest.approx(2 * SPEECH_S, abs=0.01), direct
    assert last_segment_via(cluster, sid) >= 0
    code, gone = call("DELETE", f"{API}/session/{sid}")
    assert code == 200 and gone["status"] == "success", gone
    assert httpx.get(f"{owner.url}/health").json()["live_sessions"] == 0


JS_CLIENT_RUN = """
import { readFileSync } from 'node:fs';
import { ChunkedStreamingClient } from '%(client)s';
const client = new ChunkedStreamingClient(process.env.LB_URL);
const face = new Blob([readFileSync('%(face)s')], { type: 'image/jpeg' });
await client.initSession(face, { audioSampleRate: 16000 });
const pcm = Int16Array.from({ length: 8000 }, (_, i) => Math.round(3000 * Math.sin(i / 9)));
for (let i = 0; i < 3; i++) await client.feedPcm(pcm);   // 3 × 0.5 s, each POST …/feed?session_id=
const status = await client.getStatus();
console.log(JSON.stringify({ session_id: client.sessionId, status: status.status }));
"""


def test_js_client_through_the_balancer(cluster: Cluster, sample_face_path, tmp_path):
    """static/chunked-streaming-client.js sends the affinity key itself: its feeds reach the owner."""
    if shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing under CI=true")
        pytest.skip("node is not installed")
    script = tmp_path / "run.mjs"
    client_js = (ROOT / "static" / "chunked-streaming-client.js").as_uri()
    script.write_text(JS_CLIENT_RUN % {"client": client_js, "face": sample_face_path})
    out = run_node([str(script)], {"LB_URL": cluster.url}, 60)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    sid = result["session_id"]
    assert result["status"] == "streaming"
    owner = cluster.nodes[node_of(sid)]
    st = httpx.get(f"{owner.url}{API}/status/{sid}").json()
    assert st["speech_seconds_accepted"] == pytest.approx(1.5, abs=0.01), st
    assert httpx.delete(f"{cluster.url}{API}/session/{sid}").status_code == 200


def last_segment_via(cluster: Cluster, sid: str) -> int:
    with httpx.Client(base_url=cluster.url, timeout=10) as lb:
        return last_segment(lb, sid)


def _owned(sids: list[str], node: str) -> list[str]:
    return [s for s in sids if node_of(s) == node]


@pytest.mark.slow
def test_placement_affinity_node_loss_drain_and_join(cluster: Cluster, sample_face_path, speech, pcm16):
    face = sample_face_path.read_bytes()
    n1, n2, n3 = (cluster.nodes[n] for n in NODES)
    lb = httpx.Client(base_url=cluster.url, timeout=30)

    # -- placement: 9 sessions land 3/3/3; the 10th gets facestream's own 503 + Retry-After
    sids = [init_session(lb, face, audio_sample_rate=16000)["session_id"] for _ in range(3 * MAX_SESSIONS)]
    assert Counter(node_of(s) for s in sids) == dict.fromkeys(NODES, MAX_SESSIONS), sids
    for node in (n1, n2, n3):
        assert httpx.get(f"{node.url}/health").json()["live_sessions"] == MAX_SESSIONS
    full = lb.post(f"{API}/init", files={"image": ("face.jpg", face, "image/jpeg")})
    assert "capacity" in _json_error(full, 503)
    assert int(full.headers["Retry-After"]) > 0

    # -- affinity: every feed goes to the owner, which holds exactly the speech fed
    for sid in sids:
        r = feed(lb, sid, speech)
        assert r.status_code == 200 and r.json()["session_id"] == sid, r.text
    for sid in sids:
        owner = cluster.nodes[node_of(sid)]
        st = httpx.get(f"{owner.url}{API}/status/{sid}").json()
        assert st["speech_seconds_accepted"] == pytest.approx(SPEECH_S, abs=0.01), st
    ws_sid = _owned(sids, "n3")[0]  # the WebSocket, routed by the id in its path, reaches n3 too
    asyncio.run(_stream_over_websocket(cluster.url, ws_sid, pcm16[: int(0.4 * 16000)]))
    st = httpx.get(f"{n3.url}{API}/status/{ws_sid}").json()
    assert st["speech_seconds_accepted"] == pytest.approx(SPEECH_S + 0.4, abs=0.01), st

    # -- node loss mid-stream: n2's sessions fail fast in JSON, the other six keep real time
    victims, survivors = _owned(sids, "n2"), [s for s in sids if node_of(s) != "n2"]
    before = {
        s: (time.monotonic(), lb.get(f"{API}/status/{s}").json()["total_frames_generated"]) for s in survivors
    }
    segments_before = {s: last_segment(lb, s) for s in survivors}
    events = _EventStream(f"{cluster.url}{API}/events/{victims[0]}")  # in flight when n2 dies
    assert events.opened.wait(10), "the SSE stream through the balancer did not open"
    n2.kill()
    killed_at = time.monotonic()
    for sid in victims:
        for method, path in (("GET", f"{API}/status/{sid}"), ("POST", f"{API}/feed?session_id={sid}")):
            t0 = time.monotonic()
            r = lb.request(method, path, data={"session_id": sid} if method == "POST" else None)
            assert time.monotonic() - t0 < 2.0, "a lost session's request must fail fast"
            message = _json_error(r, 410)
            assert "n2" in message and "unreachable" in message, message
    events.thread.join(5)
    assert not events.thread.is_alive(), "an in-flight SSE stream of a dead node must end, not hang"
    assert events.ended_at - killed_at < 3.0
    time.sleep(max(0.0, killed_at + 3.0 - time.monotonic()))
    for sid in survivors:
        t1, frames1 = time.monotonic(), lb.get(f"{API}/status/{sid}").json()["total_frames_generated"]
        t0, frames0 = before[sid]
        assert (frames1 - frames0) / (t1 - t0) == pytest.approx(25, rel=0.15), sid
        assert last_segment(lb, sid) >= segments_before[sid] + 2, "its playlist must keep growing"
    cluster.wait_states({("sessions", "n2"): "DOWN", ("new_sessions", "n2"): "DOWN"})

    # -- frames match the speech: a last utterance with the final flag, then the stream ends with it
    start_frame = {}
    for sid in _owned(sids, "n1"):
        r = feed(lb, sid, speech, final=True)
        assert r.status_code == 200, r.text
        start_frame[sid] = r.json()["scheduled_start_frame"]
    for sid in _owned(sids, "n1"):
        st = wait_status(lb, sid, "complete", timeout=15)
        assert st["status"] == "complete", st
        # the stream ends where the speech does: 2 s = 50 frames after the frame it was placed at
        assert abs(st["total_frames_generated"] - start_frame[sid] - SPEECH_S * 25) <= 1, st
        assert lb.delete(f"{API}/session/{sid}").status_code == 200

    # -- drain n3: no new sessions on it, its live sessions complete, then it exits by itself
    assert "balancer" in _json_error(lb.post("/admin/drain"), 403)  # never through the balancer
    drained = httpx.post(f"{n3.url}/admin/drain", params={"timeout_s": "30"})
    assert drained.status_code == 202 and drained.json()["draining"], drained.text
    cluster.wait_states(
        {("new_sessions", "n3"): "DOWN", ("sessions", "n3"): "UP", ("new_sessions", "n1"): "UP"}
    )
    fresh = [init_session(lb, face)["session_id"] for _ in range(2)]
    assert [node_of(s) for s in fresh] == ["n1", "n1"], fresh
    for sid in _owned(sids, "n3"):  # a draining node's sessions are unaffected
        assert lb.get(f"{API}/status/{sid}").json()["status"] == "streaming"
        assert feed(lb, sid, b"", final=True).status_code == 200
    assert n3.proc.wait(20) == 0
    assert "drained: no live sessions left" in n3.log()
    for sid in _owned(sids, "n3"):
        assert "unreachable" in _json_error(lb.get(f"{API}/status/{sid}"), 410)

    # -- a node joins through the runtime API (no restart of anything) and takes new sessions
    n4 = start_node("n4", cluster.workdir, ["--max-sessions", str(MAX_SESSIONS)])
    try:
        wait_healthy(n4)
        for backend, extra in (("new_sessions", "rise 1 fall 1"), ("sessions", "rise 2 fall 2")):
            runtime_api(
                cluster.admin_socket,  # experimental-mode: needed by HAProxy 2.4, harmless later
                f"experimental-mode on; add server {backend}/n4 127.0.0.1:{n4.port} check inter 1s {extra}",
            )
            runtime_api(cluster.admin_socket, f"enable health {backend}/n4")
            runtime_api(cluster.admin_socket, f"enable server {backend}/n4")
        cluster.wait_states({("new_sessions", "n4"): "UP", ("sessions", "n4"): "UP"})
        joined = [init_session(lb, face)["session_id"] for _ in range(2)]
        assert sorted(node_of(s) for s in joined) == ["n1", "n4"], joined
        for sid in joined:
            assert feed(lb, sid, speech).status_code == 200
            owner = cluster.nodes.get(node_of(sid), n4)
            assert httpx.get(f"{owner.url}{API}/status/{sid}").json()["speech_seconds_accepted"] > 0

        # -- SIGUSR1 drains with the deadline (4 s): n1 leaves with its sessions still live
        n1.proc.send_signal(signal.SIGUSR1)
        assert wait_until(lambda: httpx.get(f"{n1.url}/health").json()["draining"], 5)
        assert n1.proc.wait(15) == 0
        assert "drain deadline reached with 3 live sessions" in n1.log()
    finally:
        n4.stop()

    # -- no node left: JSON 503 + Retry-After from the balancer, not an HTML page
    assert wait_until(lambda: lb.get("/health").status_code == 503, 10)
    gone = lb.post(f"{API}/init", files={"image": ("face.jpg", face, "image/jpeg")})
    assert "no facestream node" in _json_error(gone, 503)
    assert gone.headers["Retry-After"] == "10"
    lb.close()
