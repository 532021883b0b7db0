"""LL-HLS packaging costs at 512x512, 25 fps, 200 ms parts.

1. ``LlHlsSink`` (ffmpeg subprocess → CMAF on a pipe → parts) at real-time pace: time from start
   to the first part, per-part publish delay (the time the timeline holds a part minus the wall
   time its last frame was due), ffmpeg CPU per media second, and the parser's CPU in our process.
2. The alternative considered: encoding in-process with PyAV (same x264/AAC settings, fragmented
   MP4 into memory), as CPU seconds per media second spent *inside the server process*.

    python -m benchmarks.hls_llhls [--seconds 10]   (from the repository root)
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from fractions import Fraction

import av
import numpy as np

from benchmarks.hls_encode import _cpu_seconds, _face_frames
from hls.llhls.sink import LlHlsSink
from hls.testpattern import noise_audio
from models.types import FPS, AudioSlice, VideoFrame

SIZE, RATE = 512, 48_000


def sink_at_real_time(frames: list[np.ndarray], audio: np.ndarray, seconds: float) -> None:
    n = int(seconds * FPS)
    sink = LlHlsSink("bench", SIZE, SIZE).start()
    published: dict[tuple[int, int], float] = {}
    try:
        t0 = time.monotonic()
        cpu0 = time.process_time()
        for k in range(n):
            pcm = audio[k * RATE // FPS : (k + 1) * RATE // FPS]
            sink.write(VideoFrame(k, frames[k % len(frames)]), AudioSlice(k, pcm, RATE))
            while time.monotonic() < t0 + (k + 1) / FPS:  # poll the timeline while pacing
                for seg in sink.timeline.snapshot().segments:
                    for p in seg.parts:
                        published.setdefault((p.msn, p.index), time.monotonic())
                time.sleep(0.002)
        assert sink.pid is not None
        ffmpeg_cpu = _cpu_seconds(sink.pid)
        own_cpu = time.process_time() - cpu0
        state = sink.timeline.snapshot()
    finally:
        sink.close()
    delays = []
    for seg in state.segments:
        for p in seg.parts:
            if (p.msn, p.index) in published:
                delays.append(published[(p.msn, p.index)] - (t0 + p.start + p.duration))
    first = min(published.values()) - t0
    print(
        f"  LlHlsSink at 1x: first part {first:.3f} s after start; part publish delay median "
        f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
        f"over {len(delays)} parts "
        f"(includes ≤2 ms polling); ffmpeg CPU {ffmpeg_cpu / seconds:.3f} s per media s; this process "
        f"(feeding, parsing, polling) {own_cpu / seconds:.3f} s per media s"
    )


def pyav_in_process(frames: list[np.ndarray], audio: np.ndarray, seconds: float) -> None:
    n = int(seconds * FPS)
    buf = io.BytesIO()
    opts = {"movflags": "+frag_keyframe+empty_moov+default_base_moof+cmaf", "frag_duration": "200000"}
    cpu0, t0 = time.process_time(), time.perf_counter()
    with av.open(buf, "w", format="mp4", options=opts) as out:
        x264 = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "g": "25",
            "keyint_min": "25",
            "sc_threshold": "0",
        }
        v = out.add_stream("libx264", rate=FPS, options=x264)
        v.width = v.height = SIZE
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=RATE, layout="mono")
        spt = RATE // FPS
        for k in range(n):
            vf = av.VideoFrame.from_ndarray(frames[k % len(frames)], format="rgb24").reformat(
                format="yuv420p"
            )
            vf.pts, vf.time_base = k, Fraction(1, FPS)
            out.mux(v.encode(vf))
            af = av.AudioFrame.from_ndarray(audio[None, k * spt : (k + 1) * spt], format="s16", layout="mono")
            af.sample_rate, af.pts, af.time_base = RATE, k * spt, Fraction(1, RATE)
            out.mux(a.encode(af))
        out.mux(v.encode(None))
        out.mux(a.encode(None))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    print(
        f"  PyAV in-process: {n / wall:.0f} ticks/s, {cpu / seconds:.3f} CPU s per media s in the server "
        f"process, {buf.tell() * 8 / seconds / 1000:.0f} kbit/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    frames = _face_frames(SIZE, 2 * FPS)
    audio = noise_audio(args.seconds + 1, RATE)
    print(f"LL-HLS, {SIZE}x{SIZE} @ {FPS} fps (face), 200 ms parts, {args.seconds:g} s of media")
    sink_at_real_time(frames, audio, args.seconds)
    pyav_in_process(frames, audio, args.seconds)


if __name__ == "__main__":
    main()
