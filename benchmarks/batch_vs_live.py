"""Batch render vs live session: does a whole-audio render starve a live session?

One live chunked session is fed the sample speech at real-time pace (0.5 s chunks) while a
``POST /api/audio-driven`` renders a ``--clip`` s clip (the sample speech repeated) on the same
server. Prints the live session's frame lateness (p50/p99/max, stale ticks) during the render, the
batch render's speed (× real time, wall) and process CPU; then, for reference, the same batch alone.

    python benchmarks/batch_vs_live.py [--clip 60] [--engine cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_common import API, face_bytes, running_server, speech_pcm16

from server.app import create_app
from server.settings import Settings

CHUNK_S = 0.5


def _wav(pcm16: np.ndarray, rate: int) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm16, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _batch(url: str, clip: bytes, out: dict) -> None:
    with httpx.Client(base_url=url, timeout=600) as c:
        t0, cpu0 = time.monotonic(), _cpu()
        r = c.post(
            API.replace("/chunked", ""), files={"image": ("f.jpg", face_bytes()), "audio": ("a.wav", clip)}
        )
        out.update(
            status=r.status_code, wall=time.monotonic() - t0, cpu=_cpu() - cpu0, bytes=len(r.content),
            speed=float(r.headers.get("x-render-speed", "nan")),
            render_s=float(r.headers.get("x-render-seconds", "nan")),
        )  # fmt: skip


def _feed_live(url: str, sid: str, pcm: np.ndarray, stop: threading.Event) -> None:
    step = int(24000 * CHUNK_S)
    with httpx.Client(base_url=url, timeout=30) as c:
        start, i = time.monotonic(), 0
        while not stop.is_set():
            if i > 1:
                time.sleep(max(0.0, start + (i - 1) * CHUNK_S - time.monotonic()))
            a = (i * step) % (len(pcm) - step)
            c.post(
                f"{API}/feed",
                data={"session_id": sid},
                files={"audio_chunk": ("c", pcm[a : a + step].tobytes())},
            )
            i += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", type=float, default=60.0)
    ap.add_argument("--engine", default="cpu")
    ap.add_argument("--control", type=float, default=15.0, help="seconds of live-only baseline")
    args = ap.parse_args()
    pcm24 = speech_pcm16(24000)
    reps = int(np.ceil(args.clip * 24000 / len(pcm24)))
    clip = _wav(np.tile(pcm24, reps)[: int(args.clip * 24000)], 24000)
    load = os.getloadavg()
    storage = Path(tempfile.mkdtemp(prefix="facestream-batchlive-"))
    app = create_app(
        Settings(storage_dir=storage, static_dir=None, engine=args.engine, max_audio_file_bytes=1 << 30)
    )
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        registry = app.state.registry
        sid = client.post(
            f"{API}/init", files={"image": ("f.jpg", face_bytes())}, data={"chunk_duration": "0.5"}
        ).json()["session_id"]
        stop = threading.Event()
        feeder = threading.Thread(target=_feed_live, args=(url, sid, pcm24, stop))
        feeder.start()
        time.sleep(3.0)  # live session steady before the render starts
        session = registry.get(sid)
        base0 = session.lateness.values().size
        time.sleep(args.control)  # control: the same live session, same machine load, no render
        control = session.lateness.values()[base0:] * 1000
        before = session.lateness.values().size
        stale0, ticks0 = session.stale_ticks, session.ticks_emitted
        result: dict = {}
        _batch(url, clip, result)
        late = session.lateness.values()[before:] * 1000
        stale, ticks = session.stale_ticks - stale0, session.ticks_emitted - ticks0
        stop.set()
        feeder.join()
        client.delete(f"{API}/session/{sid}")
        alone: dict = {}
        _batch(url, clip, alone)
    p50, p99 = np.percentile(late, [50, 99])
    c50, c99 = np.percentile(control, [50, 99])
    print(f"load avg before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}")
    print(
        f"live session during a {args.clip:.0f} s batch render: {late.size} frames, "
        f"lateness p50={p50:.1f} ms p99={p99:.1f} ms max={late.max():.1f} ms, stale ticks {stale}/{ticks}"
    )
    print(
        f"control, live session alone for {args.control:.0f} s: lateness p50={c50:.1f} ms p99={c99:.1f} ms "
        f"max={control.max():.1f} ms"
    )
    for name, r in (("batch with live session", result), ("batch alone", alone)):
        print(
            f"{name:<24} HTTP {r['status']}, render {r['render_s']:.1f} s = {r['speed']:.2f}x real time "
            f"(request {r['wall']:.1f} s, process CPU {r['cpu']:.1f} s, {r['bytes'] / 1e6:.1f} MB)"
        )
    print(f"load avg after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
