"""How many live sessions this machine sustains: N sessions fed speech at real-time pace.

For each N, N sessions are created on one server (CPU engine, real ffmpeg per session) and fed
0.5 s raw-PCM chunks one chunk ahead of playback (as a live client does) for ``--seconds``; then
every rendered frame's lateness (render completion − its deadline on the session clock) is
pooled. A frame later than 0 is shown as the previous picture (audio stays locked), so p99 < 100 ms
is the acceptance line. Also printed: stale ticks, CPU cost per session (core-seconds per second).

    python benchmarks/server_capacity.py [--counts 1,2,4,6,8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.server_common import API, face_bytes, running_server, speech_pcm16
from models.engines.cpu import CpuEngine
from models.types import SAMPLES_PER_FRAME, VideoFrame
from server.app import create_app
from server.settings import Settings, cpu_count

CHUNK_S = 0.5


def _feed_realtime(url: str, sid: str, pcm: np.ndarray, seconds: float, errors: list[str]) -> None:
    step = int(24000 * CHUNK_S)
    n_chunks = int(seconds / CHUNK_S)
    with httpx.Client(base_url=url, timeout=30) as client:
        start = time.monotonic()
        for i in range(n_chunks):
            if i > 1:
                time.sleep(max(0.0, start + (i - 1) * CHUNK_S - time.monotonic()))
            a = (i * step) % (len(pcm) - step)
            r = client.post(
                f"{API}/feed",
                data={"session_id": sid, "is_final_chunk": "true" if i == n_chunks - 1 else "false"},
                files={"audio_chunk": ("c", pcm[a : a + step].tobytes())},
            )
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:120]}")


class _StillStream:
    """Renders nothing: every frame is the avatar's own image (isolates server + encoder cost)."""

    lookahead_frames = 5

    def __init__(self, image: np.ndarray) -> None:
        self._image, self._pushed, self._next = image, 0, 0

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        self._pushed += len(pcm)
        ready = max(0, self._pushed // SAMPLES_PER_FRAME - self.lookahead_frames)
        out = [VideoFrame(i, self._image) for i in range(self._next, ready)]
        self._next = max(self._next, ready)
        return out

    def flush(self) -> list[VideoFrame]:
        return []

    def close(self) -> None:
        pass


class StillEngine:
    name = "still"

    def __init__(self) -> None:
        self._cpu = CpuEngine()

    def prepare_bytes(self, data: bytes, params):
        return self._cpu.prepare_bytes(data, params)

    def prepare(self, image, params):
        return self._cpu.prepare(image, params)

    def open_stream(self, avatar, params) -> _StillStream:
        return _StillStream(avatar.image)


def run(counts: list[int], seconds: float, engine: str, preset: str) -> list[tuple[int, float, float, float]]:
    pcm = speech_pcm16(24000)
    storage = Path(tempfile.mkdtemp(prefix="facestream-capacity-"))
    settings = Settings(storage_dir=storage, static_dir=None, max_sessions=max(counts) + 1, hls_preset=preset)
    app = create_app(settings, engine=StillEngine() if engine == "still" else None)
    rows = []
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        registry = app.state.registry
        for n in counts:
            sids = [
                client.post(
                    f"{API}/init", files={"image": ("f.jpg", face_bytes())}, data={"chunk_duration": "0.5"}
                ).json()["session_id"]
                for _ in range(n)
            ]
            errors: list[str] = []
            cpu0, t0 = os.times(), time.monotonic()
            threads = [
                threading.Thread(target=_feed_realtime, args=(url, s, pcm, seconds, errors)) for s in sids
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                registry.get(s).state.value in ("streaming", "draining") for s in sids
            ):
                time.sleep(0.2)
            cpu1, t1 = os.times(), time.monotonic()
            sessions = [registry.get(s) for s in sids]
            lateness = np.concatenate([s.lateness.values() for s in sessions]) * 1000
            ticks = sum(s.ticks_emitted for s in sessions)
            stale = sum(s.stale_ticks for s in sessions)
            failed = [s.error for s in sessions if s.error]
            cpu = (cpu1.user + cpu1.system + cpu1.children_user + cpu1.children_system) - (
                cpu0.user + cpu0.system + cpu0.children_user + cpu0.children_system
            )
            p50, p99 = np.percentile(lateness, [50, 99])
            per_session = cpu / (t1 - t0) / n
            print(
                f"N={n:<3} frames={lateness.size:<6} lateness p50={p50:7.1f} ms p99={p99:7.1f} ms "
                f"max={lateness.max():7.1f} ms  stale ticks={stale}/{ticks} "
                f"({100 * stale / max(ticks, 1):.1f} %)  "
                f"cpu/session={per_session:.2f} cores  feed errors={len(errors)}  failed={len(failed)}",
                flush=True,
            )
            rows.append((n, p50, p99, per_session))
            for s in sids:
                client.delete(f"{API}/session/{s}")
            if p99 >= 100 and n != counts[-1]:
                print(f"p99 ≥ 100 ms at N={n}: stopping", flush=True)
                break
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,2,4,6,8")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument(
        "--engine", choices=["cpu", "still"], default="cpu", help="still: server + encoder cost only"
    )
    ap.add_argument("--preset", default="veryfast", help="x264 preset of the HLS encoder")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    print(
        f"facestream capacity: {cpu_count()} cores, engine {args.engine} 512x512, preset {args.preset}, "
        f"{args.seconds:.0f} s of real-time speech each; load average before: {os.getloadavg()[0]:.2f}"
    )
    rows = run(counts, args.seconds, args.engine, args.preset)
    ok = [n for n, _, p99, _ in rows if p99 < 100]
    print(f"max sessions with p99 lateness < 100 ms: {max(ok) if ok else 0}")


if __name__ == "__main__":
    main()
