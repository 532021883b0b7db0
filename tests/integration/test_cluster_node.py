"""One node as the balancer sees it (probe engine, real uvicorn): node-tagged ids, 410 for another
node's session, the node label on /metrics, CDN-ready HLS caching (ETag, 304), and the drain call:
refused through a proxy, /ready 503 while /health stays 200, new sessions 503, live ones served,
the exit hook once the last session is gone."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import httpx

from server.app import create_app
from server.settings import Settings
from tests.support.api import init_session
from tests.support.engines import ProbeEngine
from tests.support.processes import wait_until
from tests.support.servers import live_server

API = "/api/audio-driven/chunked"
HEX = "0123456789abcdef0123456789abcdef"


@contextlib.contextmanager
def node(tmp_path: Path, **overrides):
    drained = threading.Event()
    settings = Settings(
        **(
            {"storage_dir": tmp_path / "s", "static_dir": None, "node_id": "na", "max_sessions": 2}
            | overrides
        )
    )
    app = create_app(settings, engine=ProbeEngine(), on_drained=drained.set)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, drained


def test_ids_carry_the_node_and_foreign_sessions_are_lost_not_missing(tmp_path, sample_face_path) -> None:
    with node(tmp_path) as (client, _):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        assert sid.startswith("na-") and (tmp_path / "s" / sid).is_dir()
        assert client.get(f"{API}/status/{sid}").status_code == 200
        lost = client.get(f"{API}/status/nb-{HEX}")
        assert lost.status_code == 410 and lost.json()["status"] == "error"
        assert "nb" in lost.json()["message"] and "unreachable" in lost.json()["message"]
        assert client.get(f"/hls/nb-{HEX}/playlist.m3u8").status_code == 410
        assert client.get(f"{API}/status/na-{HEX}").status_code == 404  # ours, but unknown
        assert client.get(f"{API}/status/{HEX}").status_code == 404  # untagged
        assert client.get(f"{API}/status/NA-{HEX}").status_code == 404  # malformed
        health = client.get("/health").json()
        assert health["node"] == "na" and health["draining"] is False
        metrics = [
            line for line in client.get("/metrics").text.splitlines() if line and not line.startswith("#")
        ]
        assert metrics and all('node="na"' in line for line in metrics)


def test_playlists_revalidate_and_segments_are_immutable(tmp_path, sample_face_path) -> None:
    with node(tmp_path, hls_mode="ts") as (client, _):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        url = f"/hls/{sid}/playlist.m3u8"
        assert wait_until(lambda: "seg_" in client.get(url).text, 15)
        r = client.get(url)
        assert r.headers["cache-control"] == "no-cache"  # browsers: always fresh
        assert r.headers["cdn-cache-control"] == "max-age=1"  # a CDN: one copy per second
        etag = r.headers["etag"]
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code in (200, 304)
        if again.status_code == 304:
            assert again.content == b"" and again.headers["etag"] == etag
        else:  # a segment was added in between: a new body, a new tag
            assert again.headers["etag"] != etag
        segment = next(x for x in r.text.split() if x.startswith("seg_"))
        seg = client.get(f"/hls/{sid}/{segment}")
        assert seg.status_code == 200 and "immutable" in seg.headers["cache-control"] and seg.headers["etag"]


def test_llhls_answers_carry_etags(tmp_path, sample_face_path) -> None:
    with node(tmp_path, hls_mode="ll") as (client, _):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        url = f"/hls/{sid}/playlist.m3u8"
        assert wait_until(lambda: client.get(url).status_code == 200, 15)
        r = client.get(url)
        assert r.headers["cache-control"] == "no-cache" and r.headers["etag"]
        init = client.get(f"/hls/{sid}/init.mp4")
        assert "immutable" in init.headers["cache-control"] and init.headers["etag"]


def test_drain_refuses_new_sessions_serves_live_ones_then_exits(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with node(tmp_path) as (client, drained):
        sid = init_session(client, face)["session_id"]
        proxied = client.post("/admin/drain", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403 and proxied.json()["status"] == "error"
        assert client.post("/admin/drain", params={"timeout_s": "soon"}).status_code == 422
        assert client.post("/admin/drain", params={"timeout_s": "-1"}).status_code == 422
        started = client.post("/admin/drain", params={"timeout_s": "60"})
        assert started.status_code == 202 and started.json()["draining"] is True
        assert started.json()["live_sessions"] == 1
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["reason"] == "draining"
        assert client.get("/health").status_code == 200 and client.get("/health").json()["draining"]
        refused = client.post(f"{API}/init", files={"image": ("f.jpg", face, "image/jpeg")})
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
        assert "draining" in refused.json()["message"]
        assert client.get(f"{API}/status/{sid}").json()["status"] == "streaming"  # unaffected
        assert not drained.wait(0.5)  # a live session holds the node
        assert client.delete(f"{API}/session/{sid}").status_code == 200
        assert drained.wait(5), "the drain must end once no session is live"
