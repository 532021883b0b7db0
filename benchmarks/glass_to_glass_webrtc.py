"""Glass-to-glass latency of the sub-second path: speech audio reaching the server over the
WebSocket → the frame it animates displayed by headless Chromium over WebRTC.

Method: the server runs with ``FACESTREAM_DEBUG_BARCODE=1``: every tick's frame index is stamped as
a barcode before the WebRTC fan-out (``server.session.realtime``), and every accepted WebSocket
message's arrival time (``time.time``) and timeline position are logged
(``GET /api/debug/sessions/{id}/ingest-times``). Chromium plays the session over WebRTC
(``static/rtc-player.js``) and reads the barcode off every presented frame
(``static/latency-probe.js``, requestVideoFrameCallback's expectedDisplayTime); its clock offset to
the server is measured NTP-style over loopback. This script speaks the sample speech in 20 ms PCM
messages at real-time pace. Latency of a displayed speech frame k = display time (server clock) −
arrival of the message holding timeline sample k × 640 — everything a live talker waits: the
scheduling lead (engine lookahead + render margin + jitter allowance), render, aiortc encode,
RTP over loopback, Chromium's jitter buffer, decode and compositing.

    python benchmarks/glass_to_glass_webrtc.py [--seconds 15] [--lead-ms 400] [--margin-ms 120] [--json]
    python benchmarks/glass_to_glass_webrtc.py --url http://127.0.0.1:9999   # a running debug server

Without ``--url`` it creates a network namespace whose only interface is ``lo`` (needs root and
iproute2), starts its own server there (``facestream serve`` on loopback, CPU engine,
``FACESTREAM_WEBRTC_ALLOW_LOOPBACK=1``) and re-runs itself there with ``--url``, so Chromium, the
server and this script talk over loopback only: ``ice_pair`` in the output shows the pair ICE
selected. With ``--url`` everything runs in the caller's namespace against that server.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime_streaming_client import AsyncRealtimeClient  # noqa: E402

API = "/api/audio-driven/chunked"
RATE = 16_000
MESSAGE_SAMPLES = RATE // 50
SPF = RATE // 25
GOAL_P50_S = 0.3


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def speech_latencies(
    arrivals: list[tuple[float, int]], shown: list[tuple[int, float]], offset_s: float
) -> list[float]:
    """Seconds from the arrival of the audio of frame k to k's first display, for every displayed
    frame whose first sample lies in a logged message (``arrivals``: (time, first sample);
    ``shown``: (index, page-clock display time in s), in display order)."""
    ordered = sorted((start, at) for at, start in arrivals)
    starts = [s for s, _ in ordered]
    first: dict[int, float] = {}
    for index, at in shown:
        first.setdefault(index, at + offset_s)
    out = []
    for index, displayed in first.items():
        arrived = arrival_of(index, starts, ordered)
        if arrived is not None:
            out.append(displayed - arrived)
    return out


def arrival_of(index: int, starts: list[int], ordered: list[tuple[int, float]]) -> float | None:
    sample = index * SPF
    i = bisect.bisect_right(starts, sample) - 1
    if i >= 0 and sample - starts[i] < MESSAGE_SAMPLES:
        return ordered[i][1]
    return None


def split_latencies(
    arrivals: list[tuple[float, int]],
    handed: dict[int, float],
    shown: list[tuple[int, float]],
    offset_s: float,
) -> tuple[list[float], list[float]]:
    """(arrival → the clock's tick of that frame, tick → display) for displayed speech frames."""
    ordered = sorted((start, at) for at, start in arrivals)
    starts = [s for s, _ in ordered]
    first: dict[int, float] = {}
    for index, at in shown:
        first.setdefault(index, at + offset_s)
    server, delivery = [], []
    for index, displayed in first.items():
        arrived = arrival_of(index, starts, ordered)
        if arrived is not None and index in handed:
            server.append(handed[index] - arrived)
            delivery.append(displayed - handed[index])
    return server, delivery


async def _speak(url: str, session_id: str, seconds: float) -> int:
    pcm, rate = sf.read(str(ROOT / "assets" / "sample_speech.wav"), dtype="int16")
    assert rate == RATE
    sent = 0
    end = time.monotonic() + seconds
    async with AsyncRealtimeClient(url, session_id, RATE) as rt:
        while time.monotonic() < end:
            left = max(0.5, end - time.monotonic())
            sent += await rt.stream(pcm[: int(left * RATE)], realtime=True, lead_s=0.0)
            await asyncio.sleep(1.0)  # a pause: the next utterance is scheduled afresh
    return sent


def _read_ready(proc: subprocess.Popen[str], timeout_s: float) -> None:
    ready = threading.Event()

    def wait() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "READY":
                ready.set()
                return

    threading.Thread(target=wait, daemon=True).start()
    if not ready.wait(timeout_s):
        proc.kill()
        raise RuntimeError(f"Chromium showed no WebRTC frame in {timeout_s} s:\n{proc.stderr.read()[-3000:]}")


def measure(url: str, seconds: float) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=60) as client:
        r = client.post(
            f"{API}/init",
            files={"image": ("face.jpg", (ROOT / "assets" / "sample_face.jpg").read_bytes(), "image/jpeg")},
            data={"audio_sample_rate": str(RATE), "chunk_duration": "0.2"},
        )
        r.raise_for_status()
        session_id = r.json()["session_id"]
        args = ["node", "tests/e2e/browser/webrtc-g2g.mjs", "--url", url, "--session", session_id]
        proc = subprocess.Popen(
            [*args, "--seconds", str(seconds + 1.5)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _read_ready(proc, 60)
            cpu0 = time.process_time()
            sent = asyncio.run(_speak(url, session_id, seconds))
            client_cpu = time.process_time() - cpu0
            out, err = proc.communicate(timeout=seconds + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
        if proc.returncode != 0:
            raise RuntimeError(f"the page driver failed:\n{out[-3000:]}\n{err[-3000:]}")
        run = json.loads(out.strip().splitlines()[-1])
        ingest = client.get(f"/api/debug/sessions/{session_id}/ingest-times").json()
        ticks = client.get(f"/api/debug/sessions/{session_id}/frame-times").json()  # the clock's hand-offs
        status = client.get(f"{API}/status/{session_id}").json()
        client.delete(f"{API}/session/{session_id}")
    offset_s = float((run.get("clock") or {}).get("offsetMs", math.nan)) / 1000
    shown = [(int(r["index"]), float(r["shownAt"]) / 1000) for r in run["records"]]
    arrivals = [(float(a), int(s)) for a, s in ingest["arrivals"]]
    latencies = speech_latencies(arrivals, shown, offset_s)
    handed = {int(i): float(t) for i, t in ticks.get("frames", [])}
    server_part, delivery = split_latencies(arrivals, handed, shown, offset_s)
    times = [at for _, at in shown]
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a > 0.2]
    return {
        "messages_sent": sent,
        "frames_shown": len({i for i, _ in shown}),
        "speech_frames_matched": len(latencies),
        "p50_s": _percentile(latencies, 0.5),
        "p90_s": _percentile(latencies, 0.9),
        "min_s": min(latencies, default=math.nan),
        "max_s": max(latencies, default=math.nan),
        "arrival_to_tick_p50_s": _percentile(server_part, 0.5),
        "tick_to_display_p50_s": _percentile(delivery, 0.5),
        "tick_to_display_p90_s": _percentile(delivery, 0.9),
        "gaps_over_200ms": len(gaps),
        "unreadable_frames": run["unreadable"],
        "connect_to_first_frame_s": (run["firstFrameAt"] - run["connectStartedAt"]) / 1000,
        "clock_rtt_ms": (run.get("clock") or {}).get("rttMs"),
        "ice_rtt_ms": run.get("rttMs"),
        "server_lead_ms": status.get("lead_ms"),
        "server_render_horizon_ms": status.get("render_horizon_ms"),
        "server_stale_ticks": status.get("stale_ticks"),
        "server_lateness_ms": status.get("lateness_ms"),
        "client_cpu_s": round(client_cpu, 2),
        "ice_pair": run.get("icePair"),
        "page_errors": run.get("errors", []) + run.get("problems", []),
        "load_avg": os.getloadavg()[0],
    }


def server_env(lead_ms: float | None = None, margin_ms: float | None = None) -> dict[str, str]:
    """The server settings for a measurement: debug barcodes, loopback ICE, optional lead/margin."""
    env = {"FACESTREAM_DEBUG_BARCODE": "1", "FACESTREAM_WEBRTC_ALLOW_LOOPBACK": "1"}
    if lead_ms is not None:
        env["FACESTREAM_LATENCY_LEAD_MS"] = str(lead_ms)
    if margin_ms is not None:
        env["FACESTREAM_RENDER_MARGIN_MS"] = str(margin_ms)
    return env


def measure_in(exec_prefix: list[str], url: str, seconds: float) -> dict[str, Any]:
    """``measure`` run by a copy of this script started with ``exec_prefix`` (inside the server's
    network namespace, where its loopback URL is reachable)."""
    cmd = [*exec_prefix, sys.executable, str(Path(__file__).resolve()), "--url", url]
    result = subprocess.run(
        [*cmd, "--seconds", str(seconds), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 150,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the measurement failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_in_namespace(
    seconds: float, lead_ms: float | None = None, margin_ms: float | None = None
) -> dict[str, Any]:
    """A server and a measurement inside a fresh network namespace with only ``lo``."""
    from tests.support.browser import netns_unavailable, network_namespace, running_server

    why = netns_unavailable()
    if why:
        raise SystemExit(f"{why}; or start a debug server yourself and pass --url (see --help)")
    with (
        network_namespace() as prefix,
        running_server(server_env(lead_ms, margin_ms), exec_prefix=prefix) as url,
    ):
        return measure_in(prefix, url, seconds)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running server started with FACESTREAM_DEBUG_BARCODE=1")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to speak")
    parser.add_argument(
        "--lead-ms", type=float, help="FACESTREAM_LATENCY_LEAD_MS for the server started here"
    )
    parser.add_argument(
        "--margin-ms", type=float, help="FACESTREAM_RENDER_MARGIN_MS for the server started here"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.url:
        summary = measure(args.url, args.seconds)
    else:
        summary = measure_in_namespace(args.seconds, args.lead_ms, args.margin_ms)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
        print(f"goal: p50 <= {GOAL_P50_S} s (audio at the server -> frame displayed, CPU engine)")
    return summary


if __name__ == "__main__":
    main()
