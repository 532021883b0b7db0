"""LiveKit Agents: ``FacestreamVideoGenerator`` and the avatar worker that runs it.

The LiveKit avatar protocol (livekit.agents.voice.avatar): the agent streams its TTS PCM to the
avatar participant over the ``lk.audio_stream`` byte stream (``DataStreamAudioOutput``), one
stream per segment; on barge-in it calls the avatar's ``lk.clear_buffer`` RPC; the avatar calls
back ``lk.playback_started`` and ``lk.playback_finished`` (position, interrupted). The SDK's
``DataStreamAudioReceiver`` speaks that protocol and ``AvatarRunner`` publishes the avatar's audio
and video through an ``AVSynchronizer``; what an avatar provides is the ``VideoGenerator``:

* ``push_audio(AudioFrame | AudioSegmentEnd)``: speech, or the end of a segment;
* ``clear_buffer()``: drop the unplayed speech (the next frame is idle on the CPU engine);
* async iteration: one ``VideoFrame`` per 1/25 s, idle included, each preceded by the
  ``AudioFrame`` (40 ms) it animates (audio first: the synchronizer's video push is the one that
  waits out the frame period, so a barge-in during that wait leaves no audio of the tick to be
  played after the clear), and ``AudioSegmentEnd`` after a segment's last frame, which
  makes the runner send ``lk.playback_finished`` exactly when the segment has been played.

``run_avatar_worker`` joins a room as the avatar and runs all of it. Requires the ``[livekit]``
extra (livekit-agents 1.8).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)
from livekit.agents.voice.avatar import (
    AvatarOptions as LkAvatarOptions,
)

from facestream.runtime import AvatarOptions, AvatarRuntime
from models.types import FPS

HANDOFF_WAIT_S = 0.2
"""clear_buffer waits at most this long for the runner to finish a push in progress."""


class FacestreamVideoGenerator(VideoGenerator):
    """A LiveKit ``VideoGenerator`` over an ``AvatarRuntime`` (the engine on a worker thread)."""

    def __init__(self, runtime: AvatarRuntime, width: int, height: int) -> None:
        self._runtime = runtime
        self.width = width
        self.height = height
        self._clears = 0  # generation counter: a segment end made before a clear is void
        self._handed = False  # the runner is pushing something we yielded (resumes us after)

    @classmethod
    async def open(cls, options: AvatarOptions) -> FacestreamVideoGenerator:
        runtime = await AvatarRuntime.open(options)
        return cls(runtime, *runtime.frame_size)

    @property
    def audio_sample_rate(self) -> int:
        return self._runtime.output_rate

    def avatar_options(self) -> LkAvatarOptions:
        """What ``AvatarRunner`` needs to size its sources."""
        return LkAvatarOptions(
            video_width=self.width,
            video_height=self.height,
            video_fps=FPS,
            audio_sample_rate=self.audio_sample_rate,
            audio_channels=1,
        )

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            await self._runtime.end_segment()
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        await self._runtime.push_audio(pcm, frame.sample_rate)

    async def clear_buffer(self) -> None:
        """Drop the unplayed speech. Returns once the runner has finished pushing what it already
        took from us: AvatarRunner resets its playback position right after this returns, so an
        audio frame of the old segment whose push completed later would count as a new segment
        (a spurious ``lk.playback_started``)."""
        self._clears += 1
        await self._runtime.clear()
        for _ in range(round(HANDOFF_WAIT_S / 0.005)):
            if not self._handed:
                break
            await asyncio.sleep(0.005)

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        frames = self._runtime.frames()
        while True:
            made = self._clears  # before the tick: a tick in flight during a clear is stale too
            try:
                frame = await anext(frames)
            except StopAsyncIteration:
                return
            h, w = frame.image.shape[:2]
            if frame.audio is not None and made == self._clears:
                self._handed = True
                yield rtc.AudioFrame(frame.audio.tobytes(), frame.sample_rate, 1, len(frame.audio))
            self._handed = True
            yield rtc.VideoFrame(w, h, rtc.VideoBufferType.RGB24, frame.image.tobytes())
            self._handed = False
            if frame.segment_end and made == self._clears:
                yield AudioSegmentEnd()

    async def aclose(self) -> None:
        await self._runtime.aclose()


@dataclass
class AvatarWorker:
    """The avatar side of one room: receiver + generator + runner, owned together."""

    runner: AvatarRunner
    receiver: DataStreamAudioReceiver
    generator: FacestreamVideoGenerator

    async def wait(self) -> None:
        await self.runner.wait_for_complete()

    async def aclose(self) -> None:
        await self.runner.aclose()
        await self.receiver.aclose()
        await self.generator.aclose()


async def start_avatar_worker(
    room: rtc.Room, options: AvatarOptions, *, agent_identity: str | None = None
) -> AvatarWorker:
    """Run the avatar in an already connected ``room``: receive the agent's speech (from
    ``agent_identity``, or the first agent participant), publish audio + video."""
    generator = await FacestreamVideoGenerator.open(options)
    receiver = DataStreamAudioReceiver(room, sender_identity=agent_identity)
    runner = AvatarRunner(room, audio_recv=receiver, video_gen=generator, options=generator.avatar_options())
    await runner.start()
    return AvatarWorker(runner, receiver, generator)


async def run_avatar_worker(
    url: str, token: str, options: AvatarOptions, agent_identity: str | None = None
) -> None:
    """Join ``url`` with ``token`` (the avatar's identity) and serve until the room closes."""
    room = rtc.Room()
    await room.connect(url, token)
    worker = await start_avatar_worker(room, options, agent_identity=agent_identity)
    try:
        await worker.wait()
    finally:
        await worker.aclose()
        await room.disconnect()


__all__ = [
    "AvatarWorker",
    "FacestreamVideoGenerator",
    "run_avatar_worker",
    "start_avatar_worker",
]
