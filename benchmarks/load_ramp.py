"""Load ramp past capacity: sessions fed at real-time pace are added one per step up to
capacity + 50 %; the excess must be refused (503 + Retry-After) while admitted sessions keep
p99 frame lateness < 100 ms. Prints per-step figures (admitted, refused, lateness over the frames
rendered during the step, stale ticks, CPU of the server + its ffmpegs per session) and the load
average; on a shared machine the CPU per session is the load-independent figure.

    python -m benchmarks.load_ramp [--step-s 12] [--max-sessions 0 (= the server default)]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.server_common import API, face_bytes, running_server, speech_pcm16
from server.app import create_app
from server.settings import Settings

CHUNK_S = 0.5


def feed_forever(url: str, sid: str, pcm: np.ndarray, stop: threading.Event, errors: list[str]) -> None:
    """0.5 s raw-PCM chunks, one chunk ahead of playback, until ``stop``."""
    step = int(24000 * CHUNK_S)
    with httpx.Client(base_url=url, timeout=30) as client:
        start, i = time.monotonic(), 0
        while not stop.is_set():
            if i > 1:
                stop.wait(max(0.0, start + (i - 1) * CHUNK_S - time.monotonic()))
            a = (i * step) % (len(pcm) - step)
            r = client.post(
                f"{API}/feed",
                data={"session_id": sid, "is_final_chunk": "false"},
                files={"audio_chunk": ("c", pcm[a : a + step].tobytes())},
            )
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:100]}")
            i += 1


def cpu_seconds() -> float:
    """CPU seconds of this process plus its live children (the ffmpegs), from /proc: figures that
    a busy shared machine does not distort the way wall-clock lateness is."""
    tick = os.sysconf("SC_CLK_TCK")
    me, total = os.getpid(), 0.0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        if int(entry) == me or int(rest[1]) == me:
            total += (int(rest[11]) + int(rest[12])) / tick
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step-s", type=float, default=12.0, help="seconds between added sessions")
    ap.add_argument("--max-sessions", type=int, default=0)
    args = ap.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="facestream-ramp-"))
    settings = Settings(storage_dir=storage, static_dir=None, max_sessions=args.max_sessions)
    capacity = settings.max_sessions
    attempts = math.ceil(capacity * 1.5)
    print(
        f"load ramp: capacity {capacity}, {attempts} attempts, {args.step_s:.0f} s/step, CPU engine 512², "
        f"load avg before {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    app = create_app(settings)
    pcm = speech_pcm16(24000)
    stop, errors, feeders, admitted = threading.Event(), [], [], []
    refused = 0
    seen: dict[str, int] = {}
    worst_p99 = 0.0
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        registry = app.state.registry
        for step in range(1, attempts + 1):
            r = client.post(
                f"{API}/init", files={"image": ("f.jpg", face_bytes())}, data={"chunk_duration": "0.5"}
            )
            if r.status_code == 200:
                sid = r.json()["session_id"]
                admitted.append(sid)
                t = threading.Thread(target=feed_forever, args=(url, sid, pcm, stop, errors), daemon=True)
                t.start()
                feeders.append(t)
                outcome = "admitted"
            else:
                refused += 1
                outcome = f"refused {r.status_code} Retry-After={r.headers.get('retry-after')}"
                if r.status_code != 503 or not r.headers.get("retry-after"):
                    outcome = f"UNEXPECTED {r.status_code} {r.text[:60]}"
            ready = client.get("/ready").status_code
            cpu0, t0 = cpu_seconds(), time.monotonic()
            time.sleep(args.step_s)
            cpu = (cpu_seconds() - cpu0) / (time.monotonic() - t0)
            fresh, stale, ticks = [], 0, 0
            for sid in admitted:
                s = registry.get(sid)
                new = s.lateness.count - seen.get(sid, 0)
                seen[sid] = s.lateness.count
                values = s.lateness.values()
                fresh.append(values[len(values) - min(new, len(values)) :])
                stale, ticks = stale + s.stale_ticks, ticks + s.ticks_emitted
            lat = np.concatenate(fresh) * 1000 if fresh else np.zeros(0)
            p50, p99 = np.percentile(lat, [50, 99]) if lat.size else (float("nan"),) * 2
            if step > 1 and lat.size:
                worst_p99 = max(worst_p99, p99)
            failed = [sid for sid in admitted if registry.get(sid).state.value == "failed"]
            per_session = cpu / max(1, len(admitted))
            print(
                f"step {step}: {outcome:<28} live={registry.live_count()} /ready={ready} "
                f"frames={lat.size:<5} lateness p50={p50:7.1f} ms p99={p99:7.1f} ms "
                f"stale={stale}/{ticks} cpu={cpu:.2f} cores ({per_session:.2f}/session) "
                f"feed errors={len(errors)} failed={len(failed)} "
                f"load={os.getloadavg()[0]:.2f}",
                flush=True,
            )
        stop.set()
        for t in feeders:
            t.join(10)
        for sid in admitted:
            client.delete(f"{API}/session/{sid}")
    verdict = "PASS" if refused == attempts - capacity and worst_p99 < 100 else "FAIL"
    print(
        f"{verdict}: admitted {len(admitted)}, refused {refused} (503), worst per-step p99 lateness "
        f"{worst_p99:.1f} ms (< 100 ms wanted), feed errors {len(errors)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
