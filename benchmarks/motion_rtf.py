"""MotionStream speed: real-time factor, per-push latency, lookahead, stream/decoder creation cost.

Run: python benchmarks/motion_rtf.py [--compare]   (--compare also times alternative decoder options)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pocketsphinx
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.motion import MotionStream
from models.motion import recognizer as rec
from models.motion.visemes import viseme_for
from models.samples import SAMPLE_SPEECH
from models.types import FPS, SAMPLES_PER_FRAME, EngineParams, MotionFrame

SR = 16_000


def run_stream(audio: np.ndarray, push: int = SAMPLES_PER_FRAME) -> tuple[float, float, list[float]]:
    """(wall RTF, CPU RTF, per-push wall latencies in ms) for pushing ``audio`` in ``push``-sample chunks."""
    stream = MotionStream(EngineParams())
    lat: list[float] = []
    w0, c0 = time.perf_counter(), time.process_time()
    for pos in range(0, len(audio), push):
        t = time.perf_counter()
        stream.push_audio(audio[pos : pos + push])
        lat.append((time.perf_counter() - t) * 1e3)
    stream.flush()
    stream.close()
    dur = len(audio) / SR
    return (time.perf_counter() - w0) / dur, (time.process_time() - c0) / dur, lat


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(name: str, audio: np.ndarray) -> None:
    wall, cpu, lat = run_stream(audio)
    print(
        f"{name:28s} {len(audio) / SR:6.1f} s  RTF wall {wall:.4f}  cpu {cpu:.4f}  "
        f"40 ms push p50 {pct(lat, 50):.2f} ms  p99 {pct(lat, 99):.2f} ms  max {max(lat):.2f} ms"
    )


def creation() -> None:
    rec.POOL._idle.clear()
    t = time.perf_counter()
    decoder = rec.POOL.acquire()
    cold = (time.perf_counter() - t) * 1e3
    rec.POOL.release(decoder)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    extra = [rec.POOL.acquire() for _ in range(20)]  # the pool holds one; 19 are created
    per_decoder = (time.perf_counter() - t) * 1e3 / 20
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for d in extra:
        rec.POOL.release(d)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        MotionStream(EngineParams())
        times.append((time.perf_counter() - t) * 1e3)
    mib = (rss1 - rss0) / 1024 / 19
    print(f"decoder creation: first {cold:.1f} ms, then {per_decoder:.1f} ms each; ~{mib:.1f} MiB each")
    median = statistics.median(times)
    print(f"MotionStream() creation (decoder pooled, taken at speech onset): median {median:.3f} ms")


def offline_labels(audio: np.ndarray, options: dict[str, object]) -> dict[int, str]:
    """Phone per frame from one whole-file utterance: what the decoder says with all the context."""
    decoder = pocketsphinx.Decoder(pocketsphinx.Config(**options))
    decoder.start_utt()
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")
    for pos in range(0, len(pcm) - SAMPLES_PER_FRAME + 1, SAMPLES_PER_FRAME):
        decoder.process_raw(pcm[pos : pos + SAMPLES_PER_FRAME].tobytes(), False, False)
    decoder.end_utt()
    return {
        m // rec.MFCC_PER_BLOCK: seg.word
        for seg in decoder.seg()
        for m in range(seg.start_frame, seg.end_frame + 1)
        if m % rec.MFCC_PER_BLOCK == rec.CENTRE_MFCC
    }


def streamed_labels(audio: np.ndarray) -> dict[int, str]:
    """The phone each frame was rendered with (read at emission time, i.e. with 200 ms lookahead)."""
    stream = MotionStream(EngineParams())
    used: dict[int, str] = {}
    frame = stream._frame  # measurement hook: record the label the frame is built from

    def recording_frame(n: int) -> MotionFrame:
        used[n] = stream._phones.get(n, "SIL")
        return frame(n)

    stream._frame = recording_frame  # type: ignore[method-assign]
    stream.push_audio(audio)
    stream.flush()
    return used


def label_agreement(name: str, audio: np.ndarray) -> None:
    streamed = streamed_labels(audio)
    references = (("same options", rec.DECODER_OPTIONS), ("topn 4", rec.DECODER_OPTIONS | {"topn": 4}))
    for ref_name, options in references:
        ref = offline_labels(audio, options)
        frames = [n for n, p in ref.items() if p != "SIL" and n in streamed]
        phone = np.mean([streamed[n] == ref[n] for n in frames])
        shape = np.mean([viseme_for(streamed[n]) == viseme_for(ref[n]) for n in frames])
        print(f"  {name:12s} streamed vs offline ({ref_name}): phone {phone:.2f}, viseme {shape:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compare", action="store_true", help="also time alternative decoder options")
    args = parser.parse_args()
    speech, sr = sf.read(SAMPLE_SPEECH, dtype="float32")
    assert sr == SR
    rng = np.random.default_rng(0)
    look = MotionStream(EngineParams()).lookahead_frames
    print(
        f"lookahead: {look} frames = {look * 1000 // FPS} ms after the frame's end "
        f"({(look + 1) * 1000 // FPS} ms after its start) + the push granularity"
    )
    creation()
    report("sample speech (11 s, 73% voiced)", np.tile(speech, 3))
    report("digital silence", np.zeros(60 * SR, np.float32))
    report("low noise -60 dBFS", (rng.standard_normal(60 * SR) * 1e-3).astype(np.float32))
    print("label agreement on speech frames (streamed labels use 200 ms lookahead):")
    label_agreement("sample", speech)
    label_agreement("sample x0.1", 0.1 * speech)
    if args.compare:
        base = dict(rec.DECODER_OPTIONS)
        for variant in ({"topn": 4}, {"topn": 3}, {"topn": 2}, {"topn": 4, "ds": 2}, {"topn": 2, "ds": 2}):
            rec.DECODER_OPTIONS.update(base | variant)
            rec.POOL._idle.clear()
            report(f"speech {variant}", np.tile(speech, 3))
        rec.DECODER_OPTIONS.update(base)
        rec.POOL._idle.clear()


if __name__ == "__main__":
    main()
