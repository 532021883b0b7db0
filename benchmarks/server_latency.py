"""Server latency on this machine (CPU engine, real uvicorn, real ffmpeg):

1. init → first HLS segment listed in the playlist (what a viewer waits for before anything plays);
2. chunk arrival → the segment that contains its first sample is listed (what a viewer waits for
   before the speech can be heard: scheduling lead + rest of the segment + encoder publish delay).

    python benchmarks/server_latency.py [--sessions 4] [--chunks 6]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.server_common import API, face_bytes, percentiles, running_server, speech_pcm16
from server.app import create_app
from server.settings import Settings


def _wait_for_segment(client: httpx.Client, sid: str, number: int, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    name = f"seg_{number:05d}.ts"
    while time.monotonic() < deadline:
        r = client.get(f"/hls/{sid}/playlist.m3u8")
        if r.status_code == 200 and name in r.text:
            return time.monotonic()
        time.sleep(0.005)
    raise TimeoutError(f"{name} not listed within {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--chunks", type=int, default=6)
    args = ap.parse_args()
    pcm = speech_pcm16(24000)
    chunk = pcm[24000 : 24000 + 12000].tobytes()  # 0.5 s of speech
    storage = Path(tempfile.mkdtemp(prefix="facestream-bench-"))
    app = create_app(Settings(storage_dir=storage, static_dir=None))
    init_times, first_segment, from_request, arrival = [], [], [], []
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(args.sessions):
            t_req = time.monotonic()
            r = client.post(
                f"{API}/init", files={"image": ("face.jpg", face_bytes())}, data={"chunk_duration": "0.5"}
            )
            t_resp = time.monotonic()
            sid = r.json()["session_id"]
            t_seg = _wait_for_segment(client, sid, 1)
            init_times.append(t_resp - t_req)
            first_segment.append(t_seg - t_resp)
            from_request.append(t_seg - t_req)
            rng = np.random.default_rng(len(init_times))
            for _ in range(args.chunks):
                time.sleep(0.8 + rng.uniform(0, 1.0))  # arrive at a random phase of the segment clock
                t_arrive = time.monotonic()
                res = client.post(
                    f"{API}/feed", data={"session_id": sid}, files={"audio_chunk": ("c", chunk)}
                ).json()
                start = res["scheduled_start_seconds"]
                seg = math.floor(start + 1e-9) + 1  # 1 s segments, numbered from 1
                arrival.append(_wait_for_segment(client, sid, seg) - t_arrive)
            client.delete(f"{API}/session/{sid}")

    def show(label: str, values: list[float]) -> None:
        p = percentiles(values)
        print(f"{label:<48} n={len(values):<3} " + "  ".join(f"{k}={v * 1000:7.1f} ms" for k, v in p.items()))

    print("facestream server latency (CPU engine, 512x512, 1 s segments)")
    show("init request → response (face analysis)", init_times)
    show("init response → first segment listed", first_segment)
    show("init request → first segment listed", from_request)
    show("chunk arrival → segment containing it listed", arrival)


if __name__ == "__main__":
    main()
