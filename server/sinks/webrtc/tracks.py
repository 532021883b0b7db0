"""aiortc tracks that carry one session's timeline to one WebRTC viewer.

aiortc encodes and sends a frame as soon as ``recv()`` returns, so pacing comes from the session
clock: ``recv()`` waits for the next tick. Timestamps are the timeline's, not wall time: video
pts = frame index × 3600 at 90 kHz, audio pts = sample position on the timeline, so audio and
video of one tick carry matching timestamps and a viewer that skipped ticks stays in sync.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from models.types import FPS, VideoFrame
from server.sinks.fanout import FanoutClosed, TickSubscription

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_PACKET_SECONDS = 0.020


class FramePacer:
    """Decides when a late frame is replaced by a repeat of the previous one (pure, injected time).

    A frame is due one period after the previous real frame arrived; ``grace_s`` later the track
    sends the previous image again under the next index instead of stalling the viewer. At most
    ``max_fill`` repeats follow one real frame: a longer gap means the clock itself stopped, and
    repeating further would only make the real frames that follow arrive "too old" and be dropped.
    """

    def __init__(self, *, fps: int = FPS, grace_s: float = 0.02, max_fill: int = 3) -> None:
        self.period = 1.0 / fps
        self.grace_s = grace_s
        self.max_fill = max_fill
        self.last_index: int | None = None
        self._last_arrival = 0.0
        self._fills = 0

    def timeout(self, now: float) -> float | None:
        """Seconds to wait for a real frame before filling; None = wait indefinitely."""
        if self.last_index is None or self._fills >= self.max_fill:
            return None
        due = self._last_arrival + (self._fills + 1) * self.period + self.grace_s
        return max(0.0, due - now)

    def accept(self, index: int, now: float) -> bool:
        """A real frame arrived; False if its slot was already filled by a repeat (drop it)."""
        if self.last_index is not None and index <= self.last_index:
            return False
        self.last_index = index
        self._last_arrival = now
        self._fills = 0
        return True

    def fill(self) -> int:
        """The index a repeat of the previous image is sent under."""
        if self.last_index is None:
            raise RuntimeError("nothing to repeat before the first frame")
        self.last_index += 1
        self._fills += 1
        return self.last_index


def to_av_video(image: np.ndarray, index: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts = index * (VIDEO_CLOCK_RATE // FPS)
    frame.time_base = VIDEO_TIME_BASE
    return frame


class SessionVideoTrack(MediaStreamTrack):
    """Latest frame of the session clock, one per tick, repeats for late ticks."""

    kind = "video"

    def __init__(
        self,
        subscription: TickSubscription,
        *,
        pacer: FramePacer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._sub = subscription
        self._pacer = pacer or FramePacer()
        self._clock = clock
        self._last: VideoFrame | None = None
        self.repeats_sent = 0
        self.stale_dropped = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        while True:
            timeout = self._pacer.timeout(self._clock())
            try:
                frame = await asyncio.wait_for(self._sub.recv_video(), timeout)
            except TimeoutError:
                assert self._last is not None  # the pacer only times out after a first frame
                self.repeats_sent += 1
                return to_av_video(self._last.image, self._pacer.fill())
            except FanoutClosed:
                self.stop()
                raise MediaStreamError from None
            if self._pacer.accept(frame.index, self._clock()):
                self._last = frame
                return to_av_video(frame.image, frame.index)
            self.stale_dropped += 1
            self._last = frame  # fresher image for the next repeat, its slot already went out

    def stop(self) -> None:
        super().stop()
        self._sub.close()


class SessionAudioTrack(MediaStreamTrack):
    """The session's audio in order, cut into 20 ms s16 mono frames with timeline pts."""

    kind = "audio"

    def __init__(self, subscription: TickSubscription) -> None:
        super().__init__()
        self._sub = subscription
        self._pending: deque[av.AudioFrame] = deque()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._pending:
            try:
                audio = await self._sub.recv_audio()
            except FanoutClosed:
                self.stop()
                raise MediaStreamError from None
            self._pending.extend(split_audio(audio.pcm, audio.sample_rate, audio.index))
        return self._pending.popleft()

    def stop(self) -> None:
        super().stop()
        self._sub.close()


def split_audio(pcm: np.ndarray, sample_rate: int, tick_index: int) -> list[av.AudioFrame]:
    """One tick's slice → 20 ms frames; pts = the sample's position on the session timeline."""
    packet = round(sample_rate * AUDIO_PACKET_SECONDS)
    if pcm.ndim != 1 or pcm.dtype != np.int16 or len(pcm) == 0 or len(pcm) % packet:
        raise ValueError(
            f"audio slice must be non-empty mono int16 in whole 20 ms packets ({packet} samples at "
            f"{sample_rate} Hz); got shape {pcm.shape} dtype {pcm.dtype}"
        )
    base = tick_index * len(pcm)
    time_base = fractions.Fraction(1, sample_rate)
    frames = []
    for start in range(0, len(pcm), packet):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + packet], format="s16", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = base + start
        frame.time_base = time_base
        frames.append(frame)
    return frames
