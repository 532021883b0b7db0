"""Hostile traffic at rate against one server while a healthy session talks: per attack, the
healthy session's frame lateness p99 and stale-tick share, what the attack got back (status
counts) and the server process's resource deltas (fds, threads, RSS, ffmpeg children).

The server has API keys and believes ``X-Forwarded-For`` from loopback (``trusted_proxies``), so the
healthy client (203.0.113.10) and the attacker (198.51.100.66) are different clients to the rate
limiter and the quotas, as they would be behind a real proxy. Each attack runs ``--seconds`` with a
fresh healthy session (so its lateness figures are the attack's alone), then the server gets a few
seconds to settle before the resource deltas are read.

    python -m benchmarks.hostile [--seconds 8] [--engine probe|cpu] [--only png-bomb,slowloris]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import io
import json
import os
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from server.api.deadlines import uvicorn_options
from server.app import create_app
from server.settings import Settings
from tests.support.engines import ProbeEngine
from tests.support.hostile import API, Resources, speech_pcm, wait_back
from tests.support.servers import live_server

KEY = "bench-key-0123456789abcdef"
ATTACK_KEY = "attacker-key-0123456789abcdef"
"""The attacker has a key of its own: the attacks are by a customer, not by strangers."""
ATTACKER_KEY_HEADER = {"Authorization": f"Bearer {ATTACK_KEY}"}
HEALTHY = {"X-Forwarded-For": "203.0.113.10", "Authorization": f"Bearer {KEY}"}
ATTACKER_IP = {"X-Forwarded-For": "198.51.100.66"}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(chunks: int = 400_000) -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + b"\x80" * 24 for _ in range(8))))
    return b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"tEXt", b"") * chunks + idat + _chunk(b"IEND", b"")


def flac(rate: int, channels: int, seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros((int(rate * seconds), channels), np.float32), rate, format="FLAC")
    return buf.getvalue()


class Healthy:
    """A session fed 0.5 s of speech every 0.5 s (one chunk ahead), measured over the attack."""

    def __init__(self, url: str, face: bytes) -> None:
        self.client = httpx.Client(base_url=url, timeout=30, headers=HEALTHY)
        r = self.client.post(f"{API}/init", files={"image": ("f.jpg", face)})
        r.raise_for_status()
        body = r.json()
        self.sid = body["session_id"]
        self.client.headers["Authorization"] = f"Bearer {body['session_token']}"
        self.stop = threading.Event()
        self.refused = collections.Counter()
        self.thread = threading.Thread(target=self._talk, daemon=True)

    def _talk(self) -> None:
        chunk, start, i = speech_pcm(0.5), time.monotonic(), 0
        while not self.stop.is_set():
            self.stop.wait(max(0.0, start + (i - 1) * 0.5 - time.monotonic()))
            r = self.client.post(
                f"{API}/feed", data={"session_id": self.sid}, files={"audio_chunk": ("c.pcm", chunk)}
            )
            if r.status_code != 200:
                self.refused[r.status_code] += 1
            i += 1

    def status(self) -> dict:
        return self.client.get(f"{API}/status/{self.sid}").json()

    def __enter__(self) -> Healthy:
        self.before = self.status()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        self.after = self.status()
        self.client.delete(f"{API}/session/{self.sid}")
        self.client.close()

    def figures(self) -> tuple[float, float | None]:
        ticks = self.after["total_frames_generated"] - self.before["total_frames_generated"]
        stale = self.after["stale_ticks"] - self.before["stale_ticks"]
        return stale / max(1, ticks), (self.after.get("lateness_ms") or {}).get("p99")


# -- attacks: each runs until ``stop`` and counts the statuses it got ------------------------------
Attack = Callable[[str, bytes, threading.Event, collections.Counter], None]


def _attacker(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=15, headers=ATTACKER_IP)


CREATED: list[tuple[str, str]] = []
"""Sessions the attacks made for themselves: deleted after each attack, before resources are read."""


def _own_session(c: httpx.Client, face: bytes) -> tuple[str, str]:
    r = c.post(f"{API}/init", files={"image": ("f.jpg", face)}, headers=ATTACKER_KEY_HEADER)
    r.raise_for_status()
    CREATED.append((r.json()["session_id"], r.json()["session_token"]))
    return CREATED[-1]


def _delete_created(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30, headers=ATTACKER_IP) as c:
        while CREATED:
            sid, token = CREATED.pop()
            c.delete(f"{API}/session/{sid}", headers={"Authorization": f"Bearer {token}"})


def auth_flood(url, face, stop, seen):
    with _attacker(url) as c:
        sid, _ = _own_session(c, face)
        while not stop.is_set():
            for h in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "nope"}):
                seen[c.post(f"{API}/interrupt/{sid}", headers=h).status_code] += 1
                seen[c.post(f"{API}/init", files={"image": ("f.jpg", b"x")}, headers=h).status_code] += 1


def png_bombs(url, face, stop, seen):
    bomb = png_bomb()
    with _attacker(url) as c:
        while not stop.is_set():
            r = c.post(f"{API}/init", files={"image": ("b.png", bomb)}, headers=ATTACKER_KEY_HEADER)
            seen[r.status_code] += 1


def flac_bombs(url, face, stop, seen):
    files = [flac(384_000, 8, 1.0), flac(192_000, 8, 4.0)]
    with _attacker(url) as c:
        sid, token = _own_session(c, face)
        while not stop.is_set():
            for data in files:
                r = c.post(
                    f"{API}/feed", data={"session_id": sid}, files={"audio_chunk": ("a.flac", data)},
                    headers={"Authorization": f"Bearer {token}"},
                )  # fmt: skip
                seen[r.status_code] += 1
                c.post(f"{API}/interrupt/{sid}", headers={"Authorization": f"Bearer {token}"})


def nested_json(url, face, stop, seen):
    with _attacker(url) as c:
        sid, token = _own_session(c, face)
        ws_url = url.replace("http", "ws", 1) + f"{API}/ws/{sid}?token={token}"
        with connect(ws_url, additional_headers=ATTACKER_IP) as ws:
            while not stop.is_set():
                r = c.post(
                    f"{API}/init", files={"image": ("f.jpg", face)}, data={"pose_style": "[" * 5000},
                    headers=ATTACKER_KEY_HEADER,
                )  # fmt: skip
                seen[r.status_code] += 1
                try:
                    ws.send("[" * 4000)
                    seen["ws:" + json.loads(ws.recv(timeout=5))["type"]] += 1
                except WebSocketException as exc:  # closed (4429) once over ws_messages_per_s
                    seen[f"ws-closed:{type(exc).__name__}"] += 1
                    return


def sse_flood(url, face, stop, seen):
    with _attacker(url) as c, contextlib.ExitStack() as held:
        sid, token = _own_session(c, face)
        while not stop.is_set():
            stream = c.stream("GET", f"{API}/events/{sid}", headers={"Authorization": f"Bearer {token}"})
            r = stream.__enter__()
            seen[r.status_code] += 1
            if r.status_code == 200:
                held.push(lambda *exc, s=stream: s.__exit__(None, None, None))  # keep it open
            else:
                stream.__exit__(None, None, None)  # refused: give the connection back
                time.sleep(0.05)


def ws_flood(url, face, stop, seen):
    with _attacker(url) as c:
        sid, token = _own_session(c, face)
    ws_url = url.replace("http", "ws", 1) + f"{API}/ws/{sid}?token={token}"
    while not stop.is_set():
        try:
            with connect(ws_url, additional_headers=ATTACKER_IP, open_timeout=5) as ws:
                for _ in range(2000):
                    ws.send(b"\0\0" * 480)
                seen["ws-open"] += 1
        except WebSocketException as exc:
            seen[type(exc).__name__] += 1


def slowloris(url, face, stop, seen):
    port = int(url.rsplit(":", 1)[1])
    socks: list[socket.socket] = []
    while not stop.is_set():
        for s in list(socks):
            try:
                s.send(b"X-a: b\r\n")
            except OSError:
                seen["closed-by-server"] += 1
                socks.remove(s)
                s.close()
        while len(socks) < 200:
            s = socket.create_connection(("127.0.0.1", port))
            s.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
            seen["opened"] += 1
        time.sleep(0.5)
    for s in socks:
        s.close()


def webrtc_ghosts(url, face, stop, seen):
    from tests.support.realtime import ViewerClient

    async def offer() -> str:
        client = ViewerClient()
        try:
            return (await client.offer())[0]
        finally:
            await client.close()

    sdp = asyncio.run(offer())
    with _attacker(url) as c:
        sid, token = _own_session(c, face)
        while not stop.is_set():
            r = c.post(
                f"{API}/webrtc/{sid}",
                json={"sdp": sdp, "type": "offer"},
                headers={"Authorization": f"Bearer {token}"},
            )
            seen[r.status_code] += 1
            time.sleep(0.05)


def interrupt_churn(url, face, stop, seen):
    chunk = speech_pcm(8.0)
    with _attacker(url) as c:
        sid, token = _own_session(c, face)
        h = {"Authorization": f"Bearer {token}"}
        while not stop.is_set():
            seen[
                c.post(
                    f"{API}/feed", data={"session_id": sid}, files={"audio_chunk": ("c", chunk)}, headers=h
                ).status_code
            ] += 1
            seen[c.post(f"{API}/interrupt/{sid}", headers=h).status_code] += 1


def finished_pile(url, face, stop, seen):
    with _attacker(url) as c:
        while not stop.is_set():
            r = c.post(f"{API}/init", files={"image": ("f.jpg", face)}, headers=ATTACKER_KEY_HEADER)
            seen[r.status_code] += 1
            if r.status_code == 200:
                body = r.json()
                CREATED.append((body["session_id"], body["session_token"]))
                c.post(
                    f"{API}/feed", data={"session_id": body["session_id"], "is_final_chunk": "true"},
                    files={"audio_chunk": ("c", speech_pcm(0.2))},
                    headers={"Authorization": f"Bearer {body['session_token']}"},
                )  # fmt: skip
            else:
                time.sleep(0.2)


ATTACKS: dict[str, Attack] = {
    "auth-flood": auth_flood,
    "png-bomb": png_bombs,
    "flac-bomb": flac_bombs,
    "nested-json": nested_json,
    "sse-flood": sse_flood,
    "ws-flood": ws_flood,
    "slowloris": slowloris,
    "webrtc-ghosts": webrtc_ghosts,
    "interrupt-churn": interrupt_churn,
    "finished-pile": finished_pile,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--engine", choices=("probe", "cpu"), default="probe")
    ap.add_argument("--only", default="", help="comma-separated attack names")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(ATTACKS)
    from models.samples import SAMPLE_FACE

    face = SAMPLE_FACE.read_bytes()
    storage = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    settings = Settings(
        storage_dir=storage, static_dir=None, warm_up=args.engine == "cpu", api_keys=f"{KEY},{ATTACK_KEY}",
        trusted_proxies="127.0.0.1", max_sessions=6, webrtc_connect_timeout_s=3, sweep_interval_s=1,
        finished_session_retention_s=5, max_finished_sessions=4,
    )  # fmt: skip
    engine = ProbeEngine() if args.engine == "probe" else None
    app = create_app(settings, engine=engine)
    print(f"engine {args.engine}, {args.seconds:g} s per attack, load average {os.getloadavg()[0]:.2f}")
    head = f"{'attack':<16} {'p99 ms':>7} {'stale %':>8} {'fds':>5} {'thr':>4} {'rss MB':>7} {'ffm':>4}"
    print(head + "  statuses")
    with live_server(app, **uvicorn_options(settings)) as url:
        Healthy(url, face).__enter__().__exit__()  # warm the lazily started pools
        for name in names:
            baseline = Resources.now()
            stop, seen = threading.Event(), collections.Counter()
            with Healthy(url, face) as healthy:
                worker = threading.Thread(target=ATTACKS[name], args=(url, face, stop, seen), daemon=True)
                worker.start()
                time.sleep(args.seconds)
                stop.set()
                worker.join(30)
            share, p99 = healthy.figures()
            time.sleep(1.0)  # the attacker's rate-limit bucket refills enough for the deletes
            _delete_created(url)
            delta = wait_back(baseline, timeout=10)
            top = ", ".join(f"{k}×{v}" for k, v in seen.most_common(4))
            p99_text = f"{p99:7.1f}" if p99 is not None else "      -"
            print(
                f"{name:<16} {p99_text} {share * 100:8.2f} {delta['fds']:5.0f} {delta['threads']:4.0f} "
                f"{delta['rss_mb']:7.1f} {delta['ffmpeg']:4.0f}  {top}"
                + (f"  healthy refused {dict(healthy.refused)}" if healthy.refused else ""),
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
