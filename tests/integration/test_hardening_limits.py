"""Limits and operations on a real uvicorn: streamed body limits, pixel bombs, per-client rate
limiting, readiness, Prometheus metrics and JSON logs."""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
import time
import zlib
from urllib.parse import urlparse

import pytest

from server.api.ratelimit import ClientRateLimiter
from server.logs import JsonFormatter, configure_logging, session_context
from tests.support.api import init_session
from tests.support.processes import metric_values, probe_app

API = "/api/audio-driven/chunked"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_allows_bursts_refills_at_rate_and_bounds_its_table() -> None:
    clock = FakeClock()
    limiter = ClientRateLimiter(rate=2.0, burst=3, max_clients=4, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)  # next token in 1/rate
    assert limiter.acquire("b") == 0.0  # another client has its own bucket
    clock.t += 0.5
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") > 0
    clock.t += 100  # refill caps at the burst
    assert [limiter.acquire("a") for _ in range(4)][-1] > 0
    for i in range(1000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 4 and limiter.refused >= 3


def _raw_request(url: str, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request over a plain socket (body in parts) and return what the server answered."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(head)
        try:
            for part in body_parts:
                s.sendall(part)
        except OSError:  # the server may stop reading once it has refused
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and data.endswith(b"}"):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return data


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def test_body_limits_refuse_declared_and_undeclared_oversize_uploads_early(tmp_path) -> None:
    with probe_app(tmp_path, max_audio_chunk_bytes=100_000) as (client, _, _):
        limit = 100_000 + 1024 * 1024
        url = str(client.base_url)
        start = f"POST {API}/feed HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
        t = time.monotonic()
        answer = _raw_request(url, f"{start}Content-Length: {1024**3}\r\n\r\n".encode(), [])
        assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - t < 2, answer[:200]
        assert b"exceeds the limit" in answer
        # no Content-Length (chunked): the count trips just past the limit, not after the 1 GB sent
        part = (
            b'--zz\r\nContent-Disposition: form-data; name="audio_chunk"; filename="a.raw"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        body = [_chunked(part)] + [_chunked(b"a" * 65536)] * (limit // 65536 + 8)
        answer = _raw_request(url, f"{start}Transfer-Encoding: chunked\r\n\r\n".encode(), body)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert client.get("/health").status_code == 200
        values = metric_values(client.get("/metrics").text)
        refused = [
            v for k, v in values.items() if k.startswith("facestream_request_errors_total") and '"413"' in k
        ]
        assert sum(refused) == 2


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR declaring ``width``×``height`` and a tiny IDAT: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [20_000, 60_000])
def test_decompression_bomb_images_are_refused_from_their_header(tmp_path, side) -> None:
    with probe_app(tmp_path, max_image_pixels=10_000_000) as (client, _, _):
        r = client.post(
            f"{API}/init", files={"image": ("bomb.png", _png_header_only(side, side), "image/png")}
        )
        assert r.status_code == 413 and "pixels" in r.json()["message"], r.text
        assert client.get("/health").json()["live_sessions"] == 0


def test_rate_limit_answers_429_with_retry_after_per_client_and_spares_hls(tmp_path) -> None:
    with probe_app(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=3) as (client, _, _):
        codes = [client.get(f"{API}/status/{'0' * 32}").status_code for _ in range(5)]
        assert codes[:3] == [404, 404, 404] and codes[3:] == [429, 429]
        r = client.get(f"{API}/status/{'0' * 32}")
        assert (
            r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "too many" in r.json()["message"]
        )
        assert client.get("/health").status_code == 200  # operations endpoints are not limited
        assert client.get(f"/hls/{'0' * 32}/playlist.m3u8").status_code == 404


def test_ready_is_503_at_capacity_and_metrics_show_sessions_lateness_and_errors(
    tmp_path, sample_face_path
) -> None:
    with probe_app(tmp_path, max_sessions=1) as (client, _, _):
        assert client.get("/ready").status_code == 200
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        r = client.get("/ready")
        assert (
            r.status_code == 503 and r.headers["retry-after"] == "10" and r.json()["reason"] == "at capacity"
        )
        assert client.get("/health").status_code == 200  # liveness is not capacity
        client.get(f"{API}/status/{'f' * 32}")
        time.sleep(1.0)
        values = metric_values(client.get("/metrics").text)
        assert values['facestream_sessions_by_state{state="streaming"}'] == 1
        assert values["facestream_frame_lateness_seconds_count"] >= 10
        assert (
            values[
                'facestream_request_errors_total{route="/api/audio-driven/chunked/status/{session_id}",status="404"}'
            ]
            == 1
        )
        depths = {q: values[f'facestream_queue_depth{{queue="{q}"}}']
            for q in ("inference_jobs", "blocking_jobs")}
        assert all(float(v).is_integer() for v in depths.values()), depths
        # a streaming session's producer keeps rendered frames ahead of the playhead
        assert values['facestream_queue_depth{queue="rendered_frames"}'] >= 1
        assert values["facestream_ffmpeg_restarts_total"] == 0
        ticks = values["facestream_ticks_total"]
        assert client.delete(f"{API}/session/{sid}").status_code == 200
        after = metric_values(client.get("/metrics").text)
        assert after["facestream_ticks_total"] >= ticks  # counters survive the session's deletion
        assert client.get("/ready").status_code == 200


def test_json_logs_carry_session_ids_from_messages_context_and_extra() -> None:
    stream = io.StringIO()
    handler = configure_logging("info", "json", stream)
    try:
        log = logging.getLogger("facestream.test")
        sid = "0123456789abcdef0123456789abcdef"
        log.info("session %s started", sid)
        with session_context("f" * 32):
            log.warning("inside")
        log.info("plain", extra={"route": "/x"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert lines[0]["session_id"] == sid and lines[0]["message"] == f"session {sid} started"
    assert lines[1]["session_id"] == "f" * 32 and lines[1]["level"] == "warning"
    assert "session_id" not in lines[2] and lines[2]["route"] == "/x"
    assert "ValueError: boom" in lines[3]["exc"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
