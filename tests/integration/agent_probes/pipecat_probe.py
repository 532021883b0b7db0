"""A real Pipecat pipeline: synthetic TTS frames → FacestreamVideoService → a collecting sink.
Prints one JSON object of raw measurements (tests assert on it). ``--remote URL``: the service
renders on the facestream server at URL (WebSocket ingest, WebRTC back) instead of in-process.

Script: 0.6 s idle; utterance A (5 s, pushed as a burst, like a fast TTS) + TTSStopped; 1 s idle;
utterance B streamed at real-time pace in 20 ms chunks, InterruptionFrame 2 s into its playback;
1 s idle; EndFrame.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from facestream.integrations.pipecat import FacestreamVideoService
from tests.integration.agent_probes.common import SAMPLE_FACE, TTS_RATE, MouthMeter, rms, tts_voice

CHUNK = TTS_RATE // 50  # 20 ms


class Sink(FrameProcessor):
    """Collects what the avatar emits: (arrival, pts, has audio, mouth gap, audio rms)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict] = []
        self.audio: list[dict] = []
        self.meter = MouthMeter()
        self.first_image = asyncio.Event()
        self.interrupted_at: float | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = time.monotonic()
        if isinstance(frame, OutputImageRawFrame):
            rgb = np.frombuffer(frame.image, np.uint8).reshape(frame.size[1], frame.size[0], 3)
            self.images.append(
                {"t": now, "pts_s": frame.pts / 1e9, "audio": frame.sync_with_audio, "rgb": rgb}
            )
            self.first_image.set()
        elif isinstance(frame, TTSAudioRawFrame):
            pcm = np.frombuffer(frame.audio, np.int16)
            self.audio.append(
                {
                    "t": now,
                    "pts_s": frame.pts / 1e9,
                    "n": len(pcm),
                    "rate": frame.sample_rate,
                    "rms": rms(pcm),
                }
            )
        elif isinstance(frame, InterruptionFrame):
            self.interrupted_at = now
        await self.push_frame(frame, direction)


async def main(remote: str | None) -> dict:
    if remote:
        service = FacestreamVideoService.remote(
            remote, SAMPLE_FACE, sample_rate=TTS_RATE, allow_loopback=True
        )
    else:
        service = FacestreamVideoService(image=SAMPLE_FACE)
    sink = Sink()
    task = PipelineTask(Pipeline([service, sink]), params=PipelineParams(), cancel_on_idle_timeout=False)
    runner = PipelineRunner(handle_sigint=False)
    run = asyncio.create_task(runner.run(task))
    try:
        await asyncio.wait_for(sink.first_image.wait(), 60)
    except TimeoutError:
        await task.cancel()
        raise
    await asyncio.sleep(0.6)

    a = tts_voice(5.0)
    a_pushed = time.monotonic()
    await task.queue_frame(TTSStartedFrame())
    for i in range(0, len(a), TTS_RATE // 10):  # 100 ms frames, as fast as the TTS makes them
        await task.queue_frame(TTSAudioRawFrame(a[i : i + TTS_RATE // 10].tobytes(), TTS_RATE, 1))
    await task.queue_frame(TTSStoppedFrame())
    await asyncio.sleep(len(a) / TTS_RATE + 1.0)

    b = tts_voice(4.0, offset_s=5.5)
    pushes = []
    await task.queue_frame(TTSStartedFrame())
    start = time.monotonic()
    interrupt_at = None
    for k, i in enumerate(range(0, len(b), CHUNK)):
        due = start + k * 0.02
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        pushes.append(time.monotonic())
        await task.queue_frame(TTSAudioRawFrame(b[i : i + CHUNK].tobytes(), TTS_RATE, 1))
        if k * 0.02 >= 2.0 + 0.25 and interrupt_at is None:  # ~2 s of B on screen
            interrupt_at = time.monotonic()
            await task.queue_frame(InterruptionFrame())
            break
    await asyncio.sleep(1.0)
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(run, 60)

    loop = asyncio.get_running_loop()
    gaps = await loop.run_in_executor(None, lambda: [sink.meter(im["rgb"]) for im in sink.images])
    images = [
        {k: v for k, v in im.items() if k != "rgb"} | {"gap": g}
        for im, g in zip(sink.images, gaps, strict=True)
    ]
    return {
        "a_seconds": len(a) / TTS_RATE,
        "a_pushed": a_pushed,
        "b_chunk_pushes": pushes,
        "b_chunk_s": CHUNK / TTS_RATE,
        "interrupt_sent": interrupt_at,
        "images": images,
        "audio": sink.audio,
    }


if __name__ == "__main__":
    remote = sys.argv[sys.argv.index("--remote") + 1] if "--remote" in sys.argv else None
    out = asyncio.run(main(remote))
    sys.stdout.write("PROBE-JSON " + json.dumps(out) + "\n")
