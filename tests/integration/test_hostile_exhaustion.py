"""Hostile traffic, class "exhaustion": one client must not take every slot, socket or byte.

Per-client session quota, finished-session cap and retention (GETs do not extend it), SSE/WS
listener caps per session and per client, WebSocket upgrades and messages rate-limited, a spoofed
``X-Forwarded-For`` ignored, slowloris connections closed by the head deadline, WebRTC peers that
never connect reaped and closed with their session. Each asserts its status, a return to the
resource baseline, and (for the attacks that run against a live server with neighbours) that a
healthy session's stale-tick share stays ≤ 1 % (above a quiet control window)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.hostile import (
    API,
    Healthy,
    Resources,
    assert_back,
    feed,
    hostile_server,
    init,
    speech_pcm,
)
from tests.support.processes import wait_until


def _ws(url: str, sid: str) -> str:
    return url.replace("http", "ws", 1) + f"{API}/ws/{sid}"


def test_per_client_session_quota(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(tmp_path, rate_limit_per_s=0, max_sessions=4, max_sessions_per_client=2) as srv:
        ids = [init(srv.client, face).json()["session_id"] for _ in range(2)]
        r = init(srv.client, face)
        assert r.status_code == 429 and r.headers["retry-after"] and "max_sessions_per_client" in r.text
        assert srv.client.delete(f"{API}/session/{ids[0]}").status_code == 200
        assert init(srv.client, face).status_code == 200  # a freed slot is the client's again


def test_listener_caps_per_session_and_client(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(
        tmp_path, rate_limit_per_s=0, max_listeners_per_session=2, max_listeners_per_client=3
    ) as srv:
        a = init(srv.client, face).json()["session_id"]
        b = init(srv.client, face).json()["session_id"]
        baseline = Resources.now()
        with httpx.Client(base_url=srv.url, timeout=10) as c, contextlib.ExitStack() as held:
            s1 = held.enter_context(c.stream("GET", f"{API}/events/{a}"))
            s2 = held.enter_context(c.stream("GET", f"{API}/events/{a}"))
            assert (s1.status_code, s2.status_code) == (200, 200)
            r = c.get(f"{API}/events/{a}")  # a third SSE stream on the same session
            assert r.status_code == 503 and r.headers["retry-after"]
            with connect(_ws(srv.url, a)) as ws:  # a WebSocket is a listener too
                assert json.loads(ws.recv(timeout=5))["type"] == "error"
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)
                assert closed.value.rcvd.code == 4503
            s3 = held.enter_context(c.stream("GET", f"{API}/events/{b}"))
            assert s3.status_code == 200
            r = c.get(f"{API}/events/{b}")  # the client holds 3 listeners across its sessions
            assert r.status_code == 429
            for s in (s1, s2, s3):
                s.close()
        listeners = srv.app.state.listeners
        assert wait_until(lambda: listeners.of_session(a) == 0 and listeners.of_session(b) == 0, 5)
        assert_back(baseline)


def test_websocket_upgrades_and_messages_are_rate_limited(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(tmp_path, rate_limit_per_s=2, rate_limit_burst=6, ws_messages_per_s=20) as srv:
        sid = init(srv.client, face).json()["session_id"]
        refused = 0
        for _ in range(12):
            try:
                with connect(_ws(srv.url, sid), open_timeout=5):
                    pass
            except InvalidStatus as exc:
                assert exc.response.status_code == 429
                refused += 1
        assert refused >= 4
        time.sleep(3.5)  # the bucket refills
        with connect(_ws(srv.url, sid)) as ws:
            for _ in range(200):
                try:
                    ws.send(json.dumps({"type": "keepalive"}))
                except ConnectionClosed:
                    break
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=5)
            assert closed.value.rcvd.code == 4429


def test_spoofed_forwarded_for_is_ignored(tmp_path, sample_face_path) -> None:
    with hostile_server(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=3) as srv:
        codes = [
            srv.client.get(f"{API}/status/{'0' * 32}", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
            for i in range(8)
        ]
        assert codes[:3] == [404, 404, 404] and codes[3:] == [429] * 5, codes


def test_slowloris_connections_are_closed(tmp_path) -> None:
    with hostile_server(tmp_path, header_timeout_s=1.0, max_header_bytes=8192) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        baseline = Resources.now()
        socks = []
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")  # half send nothing
            socks.append(s)
        t0 = time.monotonic()
        for s in socks:
            s.settimeout(5)
            data = s.recv(200)
            assert data.startswith(b"HTTP/1.1 408") or data == b"", data
            assert s.recv(10) == b""  # closed by the server
            s.close()
        assert time.monotonic() - t0 < 4.0
        big = socket.create_connection(("127.0.0.1", port))
        big.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 20_000)
        big.settimeout(5)
        assert big.recv(200).startswith(b"HTTP/1.1 431")
        big.close()
        # a dribbled keep-alive request after a good one has the same deadline
        keep = socket.create_connection(("127.0.0.1", port))
        keep.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        keep.settimeout(5)
        assert keep.recv(4096).startswith(b"HTTP/1.1 200")
        keep.sendall(b"GET /health HTTP/1.1\r\n")
        assert keep.recv(200).startswith(b"HTTP/1.1 408")
        keep.close()
        # a request answered before its body was read (413 from the declared length): the rest of
        # that body is not a head (no 431), and the connection serves the next request
        early = socket.create_connection(("127.0.0.1", port))
        body = b"x" * 2_000_000
        early.sendall(
            b"POST /api/audio-driven/chunked/interrupt/x HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        early.settimeout(5)
        assert early.recv(4096).startswith(b"HTTP/1.1 413")
        early.sendall(body + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b"HTTP/1.1 200" not in answer:
            part = early.recv(4096)
            assert part, answer
            answer += part
        early.close()
        assert httpx.get(srv.url + "/health").status_code == 200  # normal requests are unaffected
        assert_back(baseline)


def test_finished_sessions_are_capped_and_gets_do_not_extend_them(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(
        tmp_path, rate_limit_per_s=0, max_finished_sessions=1, finished_session_retention_s=1.5,
        sweep_interval_s=0.25, max_sessions=6,
    ) as srv:  # fmt: skip
        ids = []
        for _ in range(3):
            sid = init(srv.client, face).json()["session_id"]
            assert feed(srv.client, sid, speech_pcm(0.2), final=True).status_code == 200
            ids.append(sid)

        def listed() -> list[str]:  # polling status is exactly what must not keep them alive
            return [sid for sid in ids if srv.client.get(f"{API}/status/{sid}").status_code == 200]

        def finished() -> int:
            return sum(
                1 for s in srv.app.state.registry.sessions() if s.session_id in ids and s.state.terminal
            )

        assert wait_until(lambda: finished() + (3 - len(listed())) >= 3, 10)  # all played out
        assert wait_until(lambda: len(listed()) <= 1, 3)  # the count cap: oldest dropped at a sweep
        assert wait_until(lambda: not listed(), 5)  # retention, despite the GETs every 100 ms


def _recvonly_offer() -> str:
    from tests.support.realtime import ViewerClient

    async def make() -> str:
        client = ViewerClient()
        try:
            return (await client.offer())[0]
        finally:
            await client.close()

    return asyncio.run(make())


def test_webrtc_peers_that_never_connect_are_reaped(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(
        tmp_path, rate_limit_per_s=0, max_listeners_per_session=4, max_listeners_per_client=6,
        webrtc_connect_timeout_s=1.5,
    ) as srv:  # fmt: skip
        gateway = srv.app.state.webrtc_gateway
        offer = _recvonly_offer()
        baseline = Resources.now()
        with Healthy(srv.url, face) as healthy:
            sid = init(srv.client, face).json()["session_id"]
            post = lambda s: srv.client.post(f"{API}/webrtc/{s}", json={"sdp": offer, "type": "offer"})  # noqa: E731
            assert [post(sid).status_code for _ in range(4)] == [200] * 4  # answers nobody follows up
            assert post(sid).status_code == 503  # the session's viewers are full
            assert wait_until(lambda: gateway.viewer_count == 0, 8)  # reaped: never connected
            assert post(sid).status_code == 200  # the slot is free again
            garbage = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
            for _ in range(5):
                assert (
                    srv.client.post(f"{API}/webrtc/{sid}", json={"sdp": garbage, "type": "offer"}).status_code
                    == 400
                )  # rejected offers: 400, never 500, no slot kept
            assert gateway.viewer_count == 1
            other = init(srv.client, face).json()["session_id"]
            assert [post(other).status_code for _ in range(2)] == [200, 200]
            assert gateway.viewer_count == 3
            for s in (sid, other):  # peers close with their session
                assert srv.client.delete(f"{API}/session/{s}").status_code == 200
            assert wait_until(lambda: gateway.viewer_count == 0, 4)
        healthy.close()
        assert healthy.share() <= healthy.allowed(), (healthy.share(), healthy.control_share, healthy.ticks)
        assert_back(baseline)
