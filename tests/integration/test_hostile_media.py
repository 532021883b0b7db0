"""Hostile traffic, class "media and parsers": inputs that are cheap to send and costly to handle.

PNG chunk bombs (refused from the chunk table, parsed off the event loop), FLAC of 8 channels at
384 kHz (refused) or 192 kHz (downmixed block by block), deeply nested JSON in ``pose_style`` and
in WebSocket control messages (clear 4xx / error event, never a 500 or a dead socket), live feeds
that must not wait behind slow blocking jobs (separate pools), and feed-then-interrupt rounds
that must not keep the dropped speech's 48 kHz output audio. Each asserts its status, resources
back at baseline and a healthy session's stale-tick share ≤ 1 % (above a quiet control
window) while the attack ran."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib

import httpx
import numpy as np
import soundfile as sf
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


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunk_bomb(chunks: int = 400_000) -> bytes:
    """A valid 8×8 PNG with ``chunks`` empty ancillary chunks before its pixels (~4.8 MB; Pillow alone
    walks them for ~2 s holding the GIL)."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + b"\x80" * 24 for _ in range(8))))
    filler = _chunk(b"tEXt", b"") * chunks
    return b"\x89PNG\r\n\x1a\n" + ihdr + filler + idat + _chunk(b"IEND", b"")


def flac(rate: int, channels: int, seconds: float) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(buf, np.repeat(tone[:, None], channels, axis=1), rate, format="FLAC")
    return buf.getvalue()


def _probe_loop(url: str, stop: threading.Event, worst: list[float]) -> None:
    """The event loop's responsiveness while an attack runs: the slowest /health answer."""
    with httpx.Client(base_url=url, timeout=10) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            c.get("/health")
            worst[0] = max(worst[0], time.perf_counter() - t0)
            time.sleep(0.02)


def _media_attack(srv, face: bytes, bomb: bytes, rounds: int) -> None:
    sid = init(srv.client, face).json()["session_id"]
    for _ in range(rounds):
        r = init(srv.client, bomb)
        assert r.status_code == 413 and "chunks" in r.json()["message"], r.text
        r = srv.client.post("/api/audio-driven", files={"image": ("b.png", bomb), "audio": ("a.wav", b"x")})
        assert r.status_code == 413, r.text
    r = feed(srv.client, sid, flac(384_000, 8, 1.0))
    assert r.status_code == 400 and "sample rate" in r.json()["message"], r.text
    r = feed(srv.client, sid, flac(192_000, 8, 2.0))  # allowed: downmixed as decoded
    assert r.status_code == 200, r.text
    assert abs(r.json()["queued_speech_seconds"] - 2.0) < 0.3
    for field in ("pose_style", "gaze_style"):
        r = init(srv.client, face, **{field: "[" * 5000})
        assert r.status_code == 422 and field in r.json()["message"], r.text
    with connect(srv.url.replace("http", "ws", 1) + f"{API}/ws/{sid}") as ws:
        ws.send("[" * 4000)
        while (event := json.loads(ws.recv(timeout=5)))["type"] != "error":
            pass  # the session's own events (speech_started …) share the socket
        assert "nested" in event["message"], event
        ws.send(json.dumps({"type": "keepalive"}))
        ws.send(speech_pcm(0.1))  # the socket is still good
        while (event := json.loads(ws.recv(timeout=5)))["type"] != "accepted":
            pass
    assert srv.client.delete(f"{API}/session/{sid}").status_code == 200


def test_media_bombs_get_4xx_and_harm_no_session(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(tmp_path, rate_limit_per_s=0, max_chunk_seconds=5) as srv:
        bomb = png_chunk_bomb()
        _media_attack(srv, face, bomb, 1)  # warm-up: the server's lazily started pools now exist
        baseline = Resources.now()
        stop, worst = threading.Event(), [0.0]
        prober = threading.Thread(target=_probe_loop, args=(srv.url, stop, worst))
        with Healthy(srv.url, face) as healthy:
            prober.start()
            _media_attack(srv, face, bomb, 3)
            stop.set()
            prober.join(10)
        healthy.close()
        assert worst[0] < 0.5, f"the event loop stalled for {worst[0]:.2f} s"
        assert healthy.share() <= healthy.allowed(), (healthy.share(), healthy.control_share, healthy.ticks)
        assert_back(baseline)


def test_live_feeds_do_not_wait_behind_slow_blocking_jobs(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(tmp_path, rate_limit_per_s=0) as srv:
        sid = init(srv.client, face).json()["session_id"]
        blocking = srv.app.state.registry.executor.blocking
        # stand-ins for a minutes-long remux and face analyses: every blocking thread busy, more queued
        jobs = [blocking.submit(time.sleep, 3.0) for _ in range(4)]
        time.sleep(0.1)
        chunk = speech_pcm(0.5)
        t0 = time.perf_counter()
        for _ in range(3):
            assert feed(srv.client, sid, chunk).status_code == 200
        took = (time.perf_counter() - t0) / 3
        assert not all(j.done() for j in jobs)  # the slow jobs were still running meanwhile
        assert took < 0.5, f"a live feed took {took:.2f} s behind slow blocking jobs"
        for j in jobs:
            j.result(10)


def test_interrupt_frees_the_dropped_speech(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with hostile_server(tmp_path, rate_limit_per_s=0, max_chunk_seconds=10) as srv:
        sid = init(srv.client, face).json()["session_id"]
        output = srv.app.state.registry.get(sid).schedule.output
        baseline = Resources.now()
        chunk = speech_pcm(8.0)
        for _ in range(30):
            assert feed(srv.client, sid, chunk).status_code == 200
            r = srv.client.post(f"{API}/interrupt/{sid}")
            assert r.status_code == 200 and r.json()["dropped_seconds"] > 5
        held_s = output.held_samples / 48_000
        assert held_s < 2.0, f"{held_s:.1f} s of dropped output audio kept after 30 interrupts"
        assert_back(baseline, margins={"fds": 8, "threads": 4, "rss_mb": 60.0, "ffmpeg": 0})
