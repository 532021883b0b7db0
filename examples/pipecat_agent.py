"""facestream as the face of a Pipecat agent.

In a real agent the service sits between the TTS and the output transport:

    pipeline = Pipeline([
        transport.input(), stt, context_aggregator.user(), llm, tts,
        FacestreamVideoService(image=Path("face.jpg")),          # in-process CPU engine
        # FacestreamVideoService.remote("http://gpu-box:9999", Path("face.jpg")),  # or a server
        transport.output(),                                       # video_out_enabled=True, 512x512
        context_aggregator.assistant(),
    ])

This script runs without any API key: a WAV file plays the TTS (TTSStarted / audio / TTSStopped
frames), the service turns it into talking-head video, and a small sink writes what the
transport would show to an MP4 (video + the audio the frames carry).

    .venv-agent/bin/python examples/pipecat_agent.py --image assets/sample_face.jpg \\
        --audio assets/sample_speech.wav -o agent.mp4

Needs `pip install 'facestream[pipecat]'` (and mediapipe --no-deps, see the README).
"""

from __future__ import annotations

import argparse
import asyncio
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from pipecat.frames.frames import (
    EndFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from facestream.integrations.pipecat import FacestreamVideoService


class Mp4Sink(FrameProcessor):
    """Stands in for an output transport: writes the frames at their pts."""

    def __init__(self, path: Path, rate: int) -> None:
        super().__init__()
        self._out = av.open(str(path), "w")
        self._video = self._out.add_stream("libx264", rate=25, options={"preset": "veryfast"})
        self._video.pix_fmt = "yuv420p"
        self._audio = self._out.add_stream("aac", rate=rate, layout="mono")
        self._rate = rate
        self.images = 0

    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputImageRawFrame):
            w, h = frame.size
            if not self.images:
                self._video.width, self._video.height = w, h
            image = av.VideoFrame.from_ndarray(np.frombuffer(frame.image, np.uint8).reshape(h, w, 3), "rgb24")
            image.pts, image.time_base = frame.pts // 40_000_000, Fraction(1, 25)
            self._out.mux(self._video.encode(image))
            self.images += 1
        elif isinstance(frame, TTSAudioRawFrame):
            pcm = np.frombuffer(frame.audio, np.int16)[None]
            audio = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            audio.sample_rate, audio.pts = self._rate, frame.pts * self._rate // 1_000_000_000
            audio.time_base = Fraction(1, self._rate)
            self._out.mux(self._audio.encode(audio))
        await self.push_frame(frame, direction)

    def close(self) -> None:
        self._out.mux(self._video.encode(None))
        self._out.mux(self._audio.encode(None))
        self._out.close()


async def main(image: Path, audio: Path, output: Path) -> None:
    pcm, rate = sf.read(audio, dtype="int16")
    pcm = pcm if pcm.ndim == 1 else pcm[:, 0]
    sink = Mp4Sink(output, rate)
    task = PipelineTask(Pipeline([FacestreamVideoService(image=image), sink]))
    runner = asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))
    await asyncio.sleep(2.0)  # the face analysis; the avatar idles meanwhile
    await task.queue_frame(TTSStartedFrame())
    for i in range(0, len(pcm), rate // 10):  # a TTS streams 100 ms frames, faster than real time
        await task.queue_frame(TTSAudioRawFrame(pcm[i : i + rate // 10].tobytes(), rate, 1))
    await task.queue_frame(TTSStoppedFrame())
    await task.queue_frame(EndFrame())  # the service plays out what is buffered, then ends
    await runner
    sink.close()
    print(f"wrote {output}: {sink.images} frames")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, default=Path("assets/sample_face.jpg"))
    parser.add_argument("--audio", type=Path, default=Path("assets/sample_speech.wav"))
    parser.add_argument("-o", "--output", type=Path, default=Path("agent.mp4"))
    args = parser.parse_args()
    asyncio.run(main(args.image, args.audio, args.output))
