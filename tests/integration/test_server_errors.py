"""Bad input for every endpoint → the documented 4xx with a JSON message, while a healthy session
on the same server keeps streaming (its clock keeps ticking at 25 fps)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from server.app import create_app
from server.settings import Settings
from tests.support.api import feed, init_session
from tests.support.media import wav_bytes
from tests.support.servers import live_server

API = "/api/audio-driven/chunked"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = Settings(
        storage_dir=tmp_path_factory.mktemp("sessions"),
        static_dir=None,
        max_audio_chunk_bytes=1_000_000,
        max_chunk_seconds=5.0,
        max_image_bytes=3_000_000,
    )
    with live_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def face(sample_face_path: Path) -> bytes:
    return sample_face_path.read_bytes()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _expect(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == "error" and isinstance(body["message"], str) and body["message"]
    for w in words:
        assert w in body["message"], body["message"]


def _init(client: httpx.Client, image: bytes | None, **fields) -> httpx.Response:
    files = {"image": ("x.jpg", image, "image/jpeg")} if image is not None else None
    return client.post(f"{API}/init", files=files, data={k: str(v) for k, v in fields.items()})


def test_bad_input_everywhere_while_a_healthy_session_streams(server: httpx.Client, face: bytes, tmp_path):
    client = server
    healthy = init_session(client, face)["session_id"]
    t_start = time.monotonic()
    frames_start = client.get(f"{API}/status/{healthy}").json()["total_frames_generated"]

    # init: not an image, no face, missing/oversized image, out-of-range fields
    _expect(_init(client, b"definitely not an image"), 400, "image")
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (320, 1, 3))
    _expect(_init(client, _png(gradient)), 422)
    _expect(_init(client, None), 422, "image")
    _expect(_init(client, b"\xff\xd8" + bytes(3_100_000)), 413)
    for field, value in [
        ("nfe", "4"), ("nfe", "51"), ("nfe", "ten"), ("cfg_scale", "0.5"), ("cfg_scale", "5.5"),
        ("chunk_duration", "0"), ("chunk_duration", "10.5"), ("chunk_duration", "nan"),
        ("pose_style", "[1, 2]"), ("pose_style", "{}"), ("pose_style", "[1, 2, 1e9]"), ("gaze_style", "abc"),
        ("gaze_style", "[0.1, true]"), ("crop", "maybe"), ("seed", "x"), ("audio_sample_rate", "100"),
    ]:  # fmt: skip
        _expect(_init(client, face, **{field: value}), 422, field)

    # feed: unknown / forged / missing ids, bad audio, too large, too long
    sid = init_session(client, face)["session_id"]
    one_s = wav_bytes(np.zeros(16000, np.float32), 16000)
    _expect(feed(client, "0" * 32, one_s), 404)
    _expect(feed(client, "../x", one_s), 404)
    _expect(feed(client, sid.upper(), one_s), 404)
    _expect(client.post(f"{API}/feed", files={"audio_chunk": ("a", one_s)}), 422, "session_id")
    _expect(feed(client, sid, b""), 400, "empty")
    _expect(feed(client, sid, b"RIFF\x24\x00\x00\x00WAVEfmt garbage!"), 400)
    _expect(feed(client, sid, b"\x01\x02\x03"), 400)
    float_nan = io.BytesIO()
    sf.write(float_nan, np.full(1600, np.nan, np.float32), 16000, format="WAV", subtype="FLOAT")
    _expect(feed(client, sid, float_nan.getvalue()), 400, "NaN")
    _expect(feed(client, sid, bytes(1_200_000)), 413)
    _expect(feed(client, sid, wav_bytes(np.zeros(16000 * 8, np.float32), 16000)), 413, "5")
    _expect(client.post(f"{API}/feed", data={"session_id": sid}), 422, "audio_chunk")
    _expect(
        client.post(
            f"{API}/feed", data={"session_id": sid, "is_final_chunk": "perhaps"}, files={"audio_chunk": one_s}
        ),
        422,
        "is_final_chunk",
    )
    assert feed(client, sid, one_s, final=True).status_code == 200
    _expect(feed(client, sid, one_s), 409)

    # status / delete / hls: unknown and forged ids, forged file names
    _expect(client.get(f"{API}/status/{'f' * 32}"), 404)
    _expect(client.get(f"{API}/status/..%2Fx"), 404)
    _expect(client.delete(f"{API}/session/..%2F..%2Ftmp"), 404)
    _expect(client.delete(f"{API}/session/{'e' * 32}"), 404)
    for name in ["..%2F..%2Fetc%2Fpasswd", "playlist.m3u8.tmp", "seg_1.ts", "seg_00001.ts.tmp", "x.m3u8"]:
        _expect(client.get(f"/hls/{healthy}/{name}"), 404)
    _expect(client.get(f"/hls/..%2F{healthy}/playlist.m3u8"), 404)

    # the healthy session kept its clock: frames rose at ~25 fps through all of the above
    time.sleep(max(0.5, 2.0 - (time.monotonic() - t_start)))
    st = client.get(f"{API}/status/{healthy}").json()
    elapsed = time.monotonic() - t_start
    assert st["status"] == "streaming" and st["error"] is None
    assert st["total_frames_generated"] - frames_start >= 25 * elapsed - 15, (st, elapsed)
    r = client.get(f"/hls/{healthy}/playlist.m3u8", headers={"Origin": "https://viewer.example"})
    assert r.status_code == 200 and "seg_" in r.text and r.headers["access-control-allow-origin"] == "*"


def test_cors_is_open_for_get_without_credentials(server: httpx.Client) -> None:
    r = server.get("/health", headers={"Origin": "https://example.org"})
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
