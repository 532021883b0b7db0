"""Shared helpers for the real-time/WebRTC tests and benchmark (no tests here).

``SyntheticClock`` stands in for the session clock: a thread publishing one synthetic
``VideoFrame`` + 48 kHz ``AudioSlice`` per tick at 25 fps on absolute deadlines, like the real
clock. Each frame encodes its index as a gray level band and each audio slice is a tone whose
amplitude is ``(index % 64 + 1) * 256`` so receivers can re-measure what they got.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from models.types import FPS, AudioSlice, VideoFrame
from server.sinks.fanout import TickFanout

OUT_RATE = 48_000
SLICE = OUT_RATE // FPS  # 1920


def synthetic_frame(index: int, size: int = 64) -> VideoFrame:
    image = np.zeros((size, size, 3), np.uint8)
    image[: size // 2] = (index * 37) % 256
    image[size // 2 :, :, 1] = 200
    return VideoFrame(index=index, image=image)


def synthetic_audio(index: int) -> AudioSlice:
    t = (np.arange(SLICE) + index * SLICE) / OUT_RATE
    amp = (index % 64 + 1) * 256
    pcm = (amp * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return AudioSlice(index=index, pcm=pcm, sample_rate=OUT_RATE)


class SyntheticClock:
    """Publishes ticks to ``fanout`` from its own thread until ``stop()`` (which joins it)."""

    def __init__(self, fanout: TickFanout, *, size: int = 64, fps: int = FPS) -> None:
        self._fanout = fanout
        self._size = size
        self._period = 1.0 / fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synthetic-clock", daemon=True)
        self.published = 0
        self.max_publish_s = 0.0

    def start(self) -> SyntheticClock:
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        index = 0
        while not self._stop.is_set():
            frame, audio = synthetic_frame(index, self._size), synthetic_audio(index)
            t0 = time.perf_counter()
            self._fanout.publish(frame, audio)
            self.max_publish_s = max(self.max_publish_s, time.perf_counter() - t0)
            self.published = index = index + 1
            self._stop.wait(max(0.0, start + index * self._period - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def allow_loopback_ice(monkeypatch) -> None:
    """Test-only: make aioice gather 127.0.0.1 (and only it) as its host candidate.

    aioice skips 127.0.0.1, so two in-process peers on loopback never connect. Patching the one
    function that lists host addresses keeps all test traffic on loopback, needs no privileges and
    runs in CI; production gathering is untouched (the patch lives only inside a test).
    """
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


class ToneTrack:
    """A client microphone: 20 ms frames of a sine at ``freq`` Hz, 48 kHz mono, real-time paced."""

    def __new__(cls, freq: float = 1000.0):
        import asyncio
        import fractions

        import av
        from aiortc.mediastreams import MediaStreamTrack

        class _Tone(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self.n = 0
                self.start: float | None = None

            async def recv(self):
                loop = asyncio.get_running_loop()
                if self.start is None:
                    self.start = loop.time()
                await asyncio.sleep(max(0.0, self.start + self.n * 0.02 - loop.time()))
                t = (np.arange(960) + self.n * 960) / OUT_RATE
                pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
                frame.sample_rate, frame.pts = OUT_RATE, self.n * 960
                frame.time_base = fractions.Fraction(1, OUT_RATE)
                self.n += 1
                return frame

        return _Tone()


class ViewerClient:
    """An aiortc browser stand-in: receives the session's tracks, optionally sends a microphone."""

    def __init__(self, *, mic=None, max_frames: int = 500) -> None:
        import asyncio

        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()
        self.video: list = []  # (pts, rgb ndarray)
        self.audio: list = []  # av.AudioFrame
        self.ended: set[str] = set()
        self._max = max_frames
        self._tasks: list[asyncio.Task] = []
        self.pc.addTransceiver("video", direction="recvonly")
        if mic is None:
            self.pc.addTransceiver("audio", direction="recvonly")
        else:
            self.pc.addTransceiver(mic, direction="sendrecv")
        self.pc.on("track", lambda track: self._tasks.append(asyncio.ensure_future(self._consume(track))))

    async def _consume(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.ended.add(track.kind)
                return
            if track.kind == "video" and len(self.video) < self._max:
                self.video.append((frame.pts, frame.to_ndarray(format="rgb24")))
            elif track.kind == "audio" and len(self.audio) < self._max:
                self.audio.append(frame)

    async def offer(self) -> tuple[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp, self.pc.localDescription.type

    async def accept(self, sdp: str, sdp_type: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=sdp_type))

    async def close(self) -> None:
        import asyncio

        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))
