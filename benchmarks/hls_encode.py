"""HLS sink costs at the session size (512x512, 25 fps): encoder CPU, throughput, bitrate, latency.

Prints, per x264 preset: max ticks/s one sink accepts end to end, ffmpeg CPU seconds per media
second (from /proc/<pid>/stat, so threads are included), and bitrate; then, at real-time pace,
the time from start to the first published segment and each segment's publish delay (the time
its playlist first lists it minus the wall time its last frame was due).

    python benchmarks/hls_encode.py [--seconds 10] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from hls.errors import SinkStalledError
from hls.sink import HlsSink
from hls.testpattern import barcode_frame, noise_audio
from models.samples import SAMPLE_FACE
from models.types import FPS, AudioSlice, VideoFrame

RATE = 48_000
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _face_frames(size: int, count: int) -> list[np.ndarray]:
    """The sample portrait with a slow sway and a lighting drift: closer to a talking head's bits
    per frame than a synthetic pattern (the face itself is not animated here)."""
    image = cv2.cvtColor(cv2.imread(str(SAMPLE_FACE)), cv2.COLOR_BGR2RGB)
    side = min(image.shape[:2])
    image = cv2.resize(image[:side, :side], (size + 16, size + 16), interpolation=cv2.INTER_AREA)
    frames = []
    for k in range(count):
        dx, dy = 8 + 6 * np.sin(2 * np.pi * k / count), 8 + 3 * np.sin(4 * np.pi * k / count)
        m = np.float32([[1, 0, -dx], [0, 1, -dy]])
        moved = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR)
        frames.append(np.clip(moved.astype(np.int16) + int(6 * np.sin(2 * np.pi * k / count)), 0, 255))
    return [f.astype(np.uint8) for f in frames]


class _Source:
    """A cycle of distinct frames (generated once) + noise audio, as consecutive ticks."""

    def __init__(self, size: int, seconds: float, content: str) -> None:
        count = 2 * FPS
        if content == "face":
            self.frames = _face_frames(size, count)
        else:
            self.frames = [barcode_frame(k, size, size) for k in range(count)]
        self.audio = noise_audio(seconds + 1, RATE)

    def tick(self, k: int) -> tuple[VideoFrame, AudioSlice]:
        a0 = k * RATE // FPS
        pcm = self.audio[a0 : a0 + RATE // FPS]
        return VideoFrame(k, self.frames[k % len(self.frames)]), AudioSlice(k, pcm, RATE)


def throughput(src: _Source, size: int, seconds: float, preset: str) -> None:
    n = int(seconds * FPS)
    with tempfile.TemporaryDirectory() as d:
        sink = HlsSink(Path(d), size, size, preset=preset, write_timeout=30.0).start()
        try:
            t0 = time.perf_counter()
            for k in range(n):
                sink.write(*src.tick(k))
            while sink.frames_written < n:
                time.sleep(0.001)
            assert sink.pid is not None
            cpu = _cpu_seconds(sink.pid)
            published = sink.end(timeout=60)
            wall = time.perf_counter() - t0
        finally:
            sink.close()
        total_bytes = sum(p.path.stat().st_size for p in published)
    print(
        f"  preset {preset:9s}: {n / wall:6.1f} ticks/s max ({n / wall / FPS:4.1f}x real time), "
        f"ffmpeg CPU {cpu / seconds:.3f} s per media s, {total_bytes * 8 / seconds / 1000:6.0f} kbit/s"
    )


def realtime(src: _Source, size: int, seconds: float, preset: str) -> None:
    n = int(seconds * FPS)
    with tempfile.TemporaryDirectory() as d:
        sink = HlsSink(Path(d), size, size, preset=preset).start()
        try:
            t0, own0 = time.monotonic(), time.process_time()
            for k in range(n):
                sink.write(*src.tick(k))
                time.sleep(max(0.0, t0 + (k + 1) / FPS - time.monotonic()))
            assert sink.pid is not None
            cpu, own = _cpu_seconds(sink.pid), time.process_time() - own0
            time.sleep(1.5)  # let the last full segment publish before end() flushes the rest
            published = sink.segments_published
        finally:
            sink.close()
    delays, media_end = [], 0.0
    for p in published:
        media_end += p.segment.duration
        delays.append(p.published_at - (t0 + media_end))
    first = published[0].published_at - t0
    print(
        f"  preset {preset:9s} at 1x: first segment {first:.3f} s after start; publish delay "
        f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
        f"over {len(delays)} segments; ffmpeg CPU {cpu / seconds:.3f} s per media s, "
        f"feeding+watching in this process {own / seconds:.3f} s per media s"
    )


def concurrent(src: _Source, size: int, seconds: float, count: int) -> None:
    """``count`` sessions, each with its own real-time clock thread, as the server would run them."""
    n = int(seconds * FPS)
    stalls, late, cpu, first = [0] * count, [0] * count, [0.0] * count, [0.0] * count

    def session(i: int, out: Path) -> None:
        sink = HlsSink(out, size, size).start()
        try:
            t0 = time.monotonic()
            for k in range(n):
                try:
                    sink.write(*src.tick(k), timeout=0)  # the clock never waits for the encoder
                except SinkStalledError:
                    stalls[i] += 1
                    sink.write(*src.tick(k), timeout=2.0)
                delay = t0 + (k + 1) / FPS - time.monotonic()
                late[i] += delay < -0.5 / FPS
                time.sleep(max(0.0, delay))
            assert sink.pid is not None
            cpu[i] = _cpu_seconds(sink.pid)
            published = sink.segments_published
            first[i] = published[0].published_at - t0 if published else float("nan")
        finally:
            sink.close()

    with tempfile.TemporaryDirectory() as d:
        threads = []
        for i in range(count):
            (Path(d) / str(i)).mkdir()
            threads.append(threading.Thread(target=session, args=(i, Path(d) / str(i))))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print(
        f"  {count} concurrent sessions at 1x (veryfast): ffmpeg CPU {sum(cpu) / seconds:.2f} s per media s "
        f"in total; queue-full ticks {sum(stalls)}; ticks >20 ms late {sum(late)} of {count * n}; "
        f"first segment after {statistics.median(first):.2f} s (median)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--content", choices=("face", "pattern"), default="face")
    ap.add_argument("--concurrent", type=int, default=4, help="sessions for the capacity run (0: skip)")
    args = ap.parse_args()
    src = _Source(args.size, args.seconds, args.content)
    print(f"HLS sink, {args.size}x{args.size} @ {FPS} fps ({args.content}), AAC 48 kHz mono, "
          f"{args.seconds:g} s of media, {os.cpu_count()} CPUs")  # fmt: skip
    for preset in ("ultrafast", "superfast", "veryfast"):
        throughput(src, args.size, args.seconds, preset)
    for preset in ("ultrafast", "veryfast"):
        realtime(src, args.size, args.seconds, preset)
    if args.concurrent:
        concurrent(src, args.size, args.seconds, args.concurrent)


if __name__ == "__main__":
    main()
