"""Hostile traffic, class "authentication and ownership": with API keys configured, every route ×
every credential (none, a wrong key, the session's viewer token, another session's token, the
right token / owning key) against a real uvicorn. Asserts each status, that no token reaches
/metrics, that the curl flow works with the key + session token, that resources return to
baseline and that a healthy live session kept its clock (stale-tick share ≤ 1 % above a quiet
control window, tests.support.hostile.Healthy) meanwhile."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.api import auth_headers
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

KEY, OTHER_KEY = "k-primary-0123456789", "k-rotated-9876543210"


def _offer(mic: bool) -> str:
    """A real aiortc offer (receive-only, or with a microphone track)."""
    from tests.support.realtime import ToneTrack, ViewerClient

    async def make() -> str:
        client = ViewerClient(mic=ToneTrack(440) if mic else None)
        try:
            sdp, _ = await client.offer()
            return sdp
        finally:
            await client.close()

    return asyncio.run(make())


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_face_path):
    tmp = tmp_path_factory.mktemp("hostile-auth")
    face = sample_face_path.read_bytes()
    with hostile_server(
        tmp, api_keys=f"{KEY},{OTHER_KEY}", rate_limit_per_s=0, max_sessions=6, webrtc_connect_timeout_s=2
    ) as srv:
        a = init(srv.client, face, KEY).json()
        b = init(srv.client, face, OTHER_KEY).json()
        yield srv, face, a, b


CREDENTIALS = ("none", "wrong", "viewer", "other", "right")


def _cred(name: str, a: dict, b: dict) -> str | None:
    return {
        "none": None,
        "wrong": "not-a-key",
        "viewer": a["viewer_token"],
        "other": b["session_token"],
        "right": a["session_token"],
    }[name]


# (name, expected statuses for none / wrong / viewer / other / right)
CONTROL = (401, 401, 403, 403, 200)
WATCH = (401, 401, 200, 403, 200)


def _routes(srv, a: dict, face: bytes, offers: dict[str, str]):
    sid = a["session_id"]
    c = srv.client

    def post_feed(h):
        return c.post(
            f"{API}/feed",
            data={"session_id": sid},
            files={"audio_chunk": ("c.pcm", speech_pcm(0.2), "application/octet-stream")},
            headers=h,
        )

    def events(h):
        with c.stream("GET", f"{API}/events/{sid}", headers=h) as r:
            return r  # closed on exit: the listener slot is released

    return {
        "feed": (post_feed, CONTROL),
        "interrupt": (lambda h: c.post(f"{API}/interrupt/{sid}", headers=h), CONTROL),
        "status": (lambda h: c.get(f"{API}/status/{sid}", headers=h), WATCH),
        "events": (events, WATCH),
        "preview": (lambda h: c.get(f"{API}/preview/{sid}", headers=h), CONTROL),
        "recording": (
            lambda h: c.get(f"{API}/session/{sid}/recording.mp4", headers=h),
            (401, 401, 403, 403, {200, 409}),
        ),
        "webrtc-view": (
            lambda h: c.post(f"{API}/webrtc/{sid}", json={"sdp": offers["view"], "type": "offer"}, headers=h),
            WATCH,
        ),
        "webrtc-mic": (
            lambda h: c.post(f"{API}/webrtc/{sid}", json={"sdp": offers["mic"], "type": "offer"}, headers=h),
            CONTROL,
        ),
        "hls-playlist": (lambda h: c.get(f"/hls/{sid}/playlist.m3u8", headers=h), (401, 401, 200, 403, 200)),
    }


def test_every_route_against_every_credential(world) -> None:
    srv, face, a, b = world
    offers = {"view": _offer(False), "mic": _offer(True)}
    baseline = Resources.now()
    with Healthy(srv.url, face, KEY) as healthy:
        # the playlist exists once the first segment is out
        for _ in range(100):
            if "#EXTINF" in srv.client.get(a["hls_url"]).text:
                break
            time.sleep(0.1)
        for name, (call, expected) in _routes(srv, a, face, offers).items():
            for cred, want in zip(CREDENTIALS, expected, strict=True):
                r = call(auth_headers(_cred(cred, a, b)))
                allowed = want if isinstance(want, set) else {want}
                assert r.status_code in allowed, (name, cred, r.status_code, r.text[:200])
                if r.status_code == 401:
                    assert r.headers.get("www-authenticate") == "Bearer", (name, cred)
        # the viewer URL (token in the path) plays: playlist and a segment it lists
        playlist = srv.client.get(a["hls_url"])
        assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
        segment = next(line for line in playlist.text.splitlines() if line and not line.startswith("#"))
        base = a["hls_url"].rsplit("/", 1)[0]
        assert srv.client.get(f"{base}/{segment}").status_code == 200
        # ... and the bare id is not a capability any more
        assert srv.client.get(f"/hls/{a['session_id']}/{segment}").status_code == 401
        # a viewer token of another session in the path
        other = b["hls_url"].split("/")[3]
        assert srv.client.get(f"/hls/{a['session_id']}/{other}/playlist.m3u8").status_code == 403
    healthy.close()
    assert healthy.share() <= healthy.allowed(), (healthy.share(), healthy.control_share, healthy.ticks)
    assert not healthy.feed_errors
    assert_back(baseline, timeout=20)  # WebRTC peers that never connected were reaped (2 s)


def test_delete_needs_the_session_token(world) -> None:
    srv, face, _, b = world
    d = init(srv.client, face, KEY).json()
    url = f"{API}/session/{d['session_id']}"
    for cred, want in zip(CREDENTIALS, CONTROL, strict=True):
        r = srv.client.delete(url, headers=auth_headers(_cred(cred, d, b)))
        assert r.status_code == want, (cred, r.status_code, r.text)
    assert (
        srv.client.get(
            f"{API}/status/{d['session_id']}", headers=auth_headers(d["session_token"])
        ).status_code
        == 404
    )


def test_creation_and_operator_routes_need_a_key(world) -> None:
    srv, face, a, b = world
    c = srv.client
    for token, want in ((None, 401), ("nope", 401), (a["viewer_token"], 401), (a["session_token"], 401)):
        assert init(c, face, token).status_code == want
        r = c.post("/api/audio-driven", files={"image": ("f.jpg", face)}, headers=auth_headers(token))
        assert r.status_code == want, r.text
        r = c.post("/api/audio-driven/stream", files={"image": ("f.jpg", face)}, headers=auth_headers(token))
        assert r.status_code == want, r.text
        assert c.get("/metrics", headers=auth_headers(token)).status_code == want
        assert c.post("/admin/drain", headers=auth_headers(token)).status_code == want
    assert c.get("/health").status_code == 200  # liveness probes stay open
    # X-API-Key works like Bearer; the rotated key works too
    metrics = c.get("/metrics", headers={"X-API-Key": OTHER_KEY})
    assert metrics.status_code == 200
    for secret in (KEY, OTHER_KEY, a["session_token"], a["viewer_token"], b["session_token"]):
        assert secret not in metrics.text


def test_owning_key_controls_its_sessions_only(world) -> None:
    srv, _, a, b = world
    pcm = speech_pcm(0.2)
    assert feed(srv.client, a["session_id"], pcm, KEY).status_code == 200
    assert feed(srv.client, a["session_id"], pcm, OTHER_KEY).status_code == 403
    assert feed(srv.client, b["session_id"], pcm, OTHER_KEY).status_code == 200


def test_websocket_ingest_needs_the_session_token(world) -> None:
    srv, _, a, b = world
    ws_url = srv.url.replace("http", "ws", 1) + f"{API}/ws/{a['session_id']}"
    for query, code in (("", 4401), ("?token=nope", 4401), (f"?token={a['viewer_token']}", 4403),
                        (f"?token={b['session_token']}", 4403)):  # fmt: skip
        with connect(ws_url + query) as ws:
            event = json.loads(ws.recv(timeout=5))
            assert event["type"] == "error"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == code, (query, closed.value.rcvd)
    for kwargs in ({"additional_headers": auth_headers(a["session_token"])}, {}):
        url = ws_url if kwargs else ws_url + f"?token={a['session_token']}"
        with connect(url, **kwargs) as ws:
            ws.send(speech_pcm(0.1))
            while (event := json.loads(ws.recv(timeout=5)))["type"] != "accepted":
                pass
            assert event["seq"] == 0


def test_curl_flow_with_key_and_session_token(world) -> None:
    srv, face, _, _ = world
    body = init(srv.client, face, KEY).json()
    sid, token = body["session_id"], body["session_token"]
    assert token.startswith("fss_") and body["viewer_token"].startswith("fsv_")
    assert body["viewer_url"] == body["hls_url"] and body["viewer_token"] in body["hls_url"]
    assert feed(srv.client, sid, speech_pcm(0.5), token, final=True).status_code == 200
    assert srv.client.get(f"{API}/status/{sid}", headers=auth_headers(token)).status_code == 200
    r = srv.client.delete(f"{API}/session/{sid}", headers=auth_headers(token))
    assert r.status_code == 200, r.text
    assert srv.client.get(f"{API}/status/{sid}", headers=auth_headers(token)).status_code == 404


def test_foreign_origin_cannot_drive_the_api(world) -> None:
    srv, _, a, _ = world
    evil = {"Origin": "https://evil.example"}
    r = srv.client.post(
        f"{API}/interrupt/{a['session_id']}", headers={**evil, **auth_headers(a["session_token"])}
    )
    assert r.status_code == 403 and "origin" in r.json()["message"]
    pre = srv.client.options(f"{API}/init", headers={**evil, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    same = {"Origin": srv.url}  # the page the server serves itself
    r = srv.client.post(
        f"{API}/interrupt/{a['session_id']}", headers={**same, **auth_headers(a["session_token"])}
    )
    assert r.status_code == 200, r.text
    # HLS stays readable cross-origin (the viewer URL is the capability)
    hls = srv.client.get(a["hls_url"], headers=evil)
    assert hls.headers.get("access-control-allow-origin") == "*"
    url = srv.url.replace("http", "ws", 1) + f"{API}/ws/{a['session_id']}?token={a['session_token']}"
    with pytest.raises(InvalidStatus) as refused, connect(url, origin="https://evil.example"):
        pass  # a foreign page's WebSocket is refused before the handshake
    assert refused.value.response.status_code == 403


def test_open_mode_keeps_the_published_curl_flow(tmp_path, sample_face_path) -> None:
    """No keys on loopback: init → feed → status → delete with only the session id, as published."""
    with hostile_server(tmp_path, rate_limit_per_s=0) as srv:
        c = srv.client
        body = init(c, sample_face_path.read_bytes()).json()
        sid = body["session_id"]
        assert body["hls_url"] == f"/hls/{sid}/playlist.m3u8" and body["session_token"]
        assert feed(c, sid, speech_pcm(0.3), final=True).status_code == 200
        assert c.get(f"{API}/status/{sid}").status_code == 200
        assert c.delete(f"{API}/session/{sid}").status_code == 200
    with hostile_server(tmp_path, rate_limit_per_s=0, require_session_token=True) as srv:
        c = srv.client
        body = init(c, sample_face_path.read_bytes()).json()
        sid = body["session_id"]
        assert feed(c, sid, speech_pcm(0.3)).status_code == 401
        assert feed(c, sid, speech_pcm(0.3), body["viewer_token"]).status_code == 403
        assert feed(c, sid, speech_pcm(0.3), body["session_token"]).status_code == 200
        assert httpx.get(srv.url + body["hls_url"]).status_code in (200, 404)  # 404: no segment yet
        assert (
            c.delete(f"{API}/session/{sid}", headers=auth_headers(body["session_token"])).status_code == 200
        )


def test_debug_routes_are_watch_routes(tmp_path, sample_face_path) -> None:
    """The latency-debug routes (only with ``debug_barcode``) follow the same matrix as status."""
    face = sample_face_path.read_bytes()
    with hostile_server(tmp_path, api_keys=KEY, rate_limit_per_s=0, debug_barcode=True) as srv:
        a, b = init(srv.client, face, KEY).json(), init(srv.client, face, KEY).json()
        for route in ("frame-times", "ingest-times"):
            url = f"/api/debug/sessions/{a['session_id']}/{route}"
            for cred, want in zip(CREDENTIALS, WATCH, strict=True):
                r = srv.client.get(url, headers=auth_headers(_cred(cred, a, b)))
                assert r.status_code == want, (route, cred, r.status_code, r.text[:200])
