"""Pipecat in-process path: TTS audio frame in → its OutputImageRawFrame out, and CPU per session.

A real Pipecat pipeline (FacestreamVideoService with the CPU engine in-process → a sink) is fed
the bundled speech as a TTS streaming at exactly real time in 20 ms TTSAudioRawFrames (the worst
case for latency: a burst-ahead TTS only waits for playback). Latency of speech frame j = the
sink's receipt of its image − the push of its first 20 ms chunk. CPU: process CPU seconds per
wall second (all threads: Pipecat, the engine's worker thread) while idling and while speaking.

    .venv-agent/bin/python benchmarks/agent_latency.py [--seconds 8] [--idle 4] [--json]

Runs in the agent venv (scripts/setup-agent.sh): Pipecat needs protobuf 6, the server's venv has 4.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipecat.frames.frames import (  # noqa: E402
    EndFrame,
    Frame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.runner import PipelineRunner  # noqa: E402
from pipecat.pipeline.task import PipelineTask  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402

from facestream.integrations.pipecat import FacestreamVideoService  # noqa: E402
from models.samples import SAMPLE_FACE  # noqa: E402
from tests.integration.agent_probes.common import TTS_RATE, tts_voice  # noqa: E402

CHUNK = TTS_RATE // 50
GOAL_P50_S = 0.3


class Sink(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.speech: list[float] = []  # receipt times of images that carry speech
        self.images = 0
        self.first = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputImageRawFrame):
            self.images += 1
            self.first.set()
            if frame.sync_with_audio:
                self.speech.append(time.monotonic())
        await self.push_frame(frame, direction)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else math.nan


async def run(seconds: float, idle_s: float) -> dict:
    sink = Sink()
    task = PipelineTask(
        Pipeline([FacestreamVideoService(image=SAMPLE_FACE), sink]), cancel_on_idle_timeout=False
    )
    runner = asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))
    await asyncio.wait_for(sink.first.wait(), 60)
    await asyncio.sleep(0.5)

    cpu0, wall0, n0 = time.process_time(), time.monotonic(), sink.images
    await asyncio.sleep(idle_s)
    idle_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    idle_fps = (sink.images - n0) / (time.monotonic() - wall0)

    voice = tts_voice(seconds)
    pushes: list[float] = []
    await task.queue_frame(TTSStartedFrame())
    cpu0, wall0 = time.process_time(), time.monotonic()
    for k, i in enumerate(range(0, len(voice), CHUNK)):
        await asyncio.sleep(max(0.0, wall0 + k * 0.02 - time.monotonic()))
        pushes.append(time.monotonic())
        await task.queue_frame(TTSAudioRawFrame(voice[i : i + CHUNK].tobytes(), TTS_RATE, 1))
    await task.queue_frame(TTSStoppedFrame())
    await asyncio.sleep(0.6)
    speech_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(runner, 60)

    latencies = [t - pushes[2 * j] for j, t in enumerate(sink.speech) if 2 * j < len(pushes)]
    return {
        "speech_frames": len(sink.speech),
        "expected_frames": len(voice) / TTS_RATE * 25,
        "p50_s": percentile(latencies, 0.5),
        "p90_s": percentile(latencies, 0.9),
        "max_s": max(latencies, default=math.nan),
        "cpu_cores_idle": idle_cpu,
        "cpu_cores_speaking": speech_cpu,
        "idle_fps": idle_fps,
        "load_avg": os.getloadavg()[0],
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="speech streamed (≤ 11 s: the sample)")
    parser.add_argument("--idle", type=float, default=4.0, help="idle seconds measured first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = asyncio.run(run(min(args.seconds, 11.0), args.idle))
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:22s} {value:.3f}" if isinstance(value, float) else f"{key:22s} {value}")
        print(f"goal: p50 <= {GOAL_P50_S} s (TTS audio frame in -> image frame out, in-process CPU engine)")
    return summary


if __name__ == "__main__":
    main()
