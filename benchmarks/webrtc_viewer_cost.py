"""CPU cost per WebRTC viewer of one session at 512², 25 fps (aiortc encodes once per viewer).

The server side (a 25 fps clock thread + RingTickFanout + WebRtcGateway) runs in this process;
the viewers (aiortc peers that decode what they receive) run in a child process so that their
decoding is not counted. For 0, 1, 2, 4 viewers it measures this process's CPU time over a
window and prints CPU per viewer as a share of one core, plus the frame rate viewers received.

Frames are the sample face at 512² with a small moving head translation (every pixel changes
every frame, like a talking head with head motion), so the encoder does real work.

Traffic stays on loopback: like the tests, aioice is made to gather only 127.0.0.1.

    python benchmarks/webrtc_viewer_cost.py [--seconds 8] [--viewers 1 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZE = 512
FPS = 25


def allow_loopback_ice() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def face_frames(count: int = 50) -> list[np.ndarray]:
    import cv2

    from models.samples import SAMPLE_FACE

    bgr = cv2.imread(str(SAMPLE_FACE))
    h, w = bgr.shape[:2]
    side = min(h, w)
    square = bgr[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
    rgb = cv2.cvtColor(cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    frames = []
    for i in range(count):
        dx, dy = 3 * np.sin(2 * np.pi * i / count), 2 * np.sin(4 * np.pi * i / count)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(rgb, m, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
        frames.append(np.ascontiguousarray(moved))
    return frames


def clock_thread(fanout, frames: list[np.ndarray], stop: threading.Event) -> threading.Thread:
    from models.types import AudioSlice, VideoFrame

    def run() -> None:
        start, n = time.monotonic(), 0
        t = np.arange(1920) / 48_000
        while not stop.is_set():
            pcm = (3000 * np.sin(2 * np.pi * 220 * (t + n / FPS))).astype(np.int16)
            fanout.publish(VideoFrame(n, frames[n % len(frames)]), AudioSlice(n, pcm, 48_000))
            n += 1
            stop.wait(max(0.0, start + n / FPS - time.monotonic()))

    thread = threading.Thread(target=run, name="bench-clock", daemon=True)
    thread.start()
    return thread


def viewer_process(conn, count: int, seconds: float) -> None:
    """Child: make ``count`` offers, apply answers, count received frames for ``seconds``."""
    allow_loopback_ice()

    async def main() -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.mediastreams import MediaStreamError

        pcs, counts, tasks = [], [], []
        for _ in range(count):
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            c = {"video": 0, "audio": 0}

            async def consume(track, c=c) -> None:
                while True:
                    try:
                        await track.recv()
                    except MediaStreamError:
                        return
                    c[track.kind] += 1

            pc.on("track", lambda tr, consume=consume: tasks.append(asyncio.ensure_future(consume(tr))))
            await pc.setLocalDescription(await pc.createOffer())
            pcs.append(pc)
            counts.append(c)
        conn.send([(pc.localDescription.sdp, pc.localDescription.type) for pc in pcs])
        answers = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        for pc, (sdp, kind) in zip(pcs, answers, strict=True):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        await asyncio.sleep(2.0)  # connect + first keyframes
        before = [dict(c) for c in counts]
        conn.send("measuring")
        await asyncio.sleep(seconds)
        conn.send([{k: (c[k] - b[k]) / seconds for k in c} for c, b in zip(counts, before, strict=True)])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "done"
        for pc in pcs:
            await pc.close()
        for t in tasks:
            t.cancel()

    asyncio.run(main())


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(viewers: int, seconds: float, frames: list[np.ndarray]) -> dict:
    from server.sinks.fanout import RingTickFanout
    from server.sinks.webrtc.gateway import WebRtcConfig, WebRtcGateway

    loop = asyncio.get_running_loop()
    fanout = RingTickFanout()
    stop = threading.Event()
    clock = clock_thread(fanout, frames, stop)
    gateway = WebRtcGateway(WebRtcConfig(max_viewers_per_session=max(1, viewers)))
    rates: list[dict] = []
    proc = None
    try:
        if viewers:
            parent, child = mp.get_context("spawn").Pipe()
            proc = mp.get_context("spawn").Process(target=viewer_process, args=(child, viewers, seconds))
            proc.start()
            offers = await loop.run_in_executor(None, parent.recv)
            answers = [await gateway.answer(sdp, kind, fanout) for sdp, kind in offers]
            parent.send(answers)
            await loop.run_in_executor(None, parent.recv)  # "measuring"
        else:
            await asyncio.sleep(2.0)
        cpu0, t0 = cpu_seconds(), time.monotonic()
        if viewers:
            rates = await loop.run_in_executor(None, parent.recv)
        else:
            await asyncio.sleep(seconds)
        cpu = (cpu_seconds() - cpu0) / (time.monotonic() - t0)
        if viewers:
            parent.send("done")
    finally:
        await gateway.close()
        fanout.close()
        stop.set()
        clock.join()
        if proc is not None:
            proc.join(timeout=10)
    return {"viewers": viewers, "cpu_cores": cpu, "rates": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    allow_loopback_ice()
    frames = face_frames()
    print(f"WebRTC viewer cost: {SIZE}x{SIZE} @ {FPS} fps, VP8 (aiortc default), window {args.seconds:g} s")
    base = asyncio.run(measure(0, args.seconds, frames))["cpu_cores"]
    print(f"  baseline (clock + fan-out, no viewer): {100 * base:5.1f} % of one core")
    for n in args.viewers:
        r = asyncio.run(measure(n, args.seconds, frames))
        per = (r["cpu_cores"] - base) / n
        fps = [round(x["video"], 1) for x in r["rates"]]
        aps = [round(x["audio"], 1) for x in r["rates"]]
        print(
            f"  {n} viewer(s): server {100 * r['cpu_cores']:5.1f} % of one core, "
            f"{100 * per:5.1f} % per viewer; received video fps {fps}, audio frames/s {aps}"
        )


if __name__ == "__main__":
    main()
