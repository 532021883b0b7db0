"""Turn a viewer's incoming WebRTC audio track (microphone) into session speech input."""

from __future__ import annotations

import logging
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

MIC_SAMPLE_RATE = 48_000

AudioSink = Callable[[np.ndarray, int], None]


class MicPump:
    """Reads decoded mic frames, converts to mono int16 48 kHz and hands batches to ``sink``.

    Batching (``batch_ms``) trades a little latency for fewer calls into the session; the sink
    runs on the event loop and must only enqueue. A sink that raises is logged and counted; the
    pump keeps going, since one refused batch (e.g. backpressure) must not end the microphone.
    """

    def __init__(self, track: MediaStreamTrack, sink: AudioSink, *, batch_ms: int = 40) -> None:
        self._track = track
        self._sink = sink
        self._batch = MIC_SAMPLE_RATE * batch_ms // 1000
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=MIC_SAMPLE_RATE)
        self._parts: list[np.ndarray] = []
        self._buffered = 0
        self.samples_delivered = 0
        self.sink_errors = 0

    async def run(self) -> None:
        while True:
            try:
                frame = await self._track.recv()
            except MediaStreamError:
                break
            if not isinstance(frame, av.AudioFrame):  # an audio track yields audio frames only
                continue
            for out in self._resampler.resample(frame):
                pcm = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                self._parts.append(pcm)
                self._buffered += len(pcm)
            if self._buffered >= self._batch:
                self._deliver()
        if self._buffered:
            self._deliver()

    def _deliver(self) -> None:
        pcm = np.concatenate(self._parts)
        self._parts, self._buffered = [], 0
        try:
            self._sink(pcm, MIC_SAMPLE_RATE)
        except Exception:  # the sink is the session's code: keep the mic alive, say why
            self.sink_errors += 1
            log.exception("microphone audio sink failed (%d so far)", self.sink_errors)
            return
        self.samples_delivered += len(pcm)


async def drain(track: MediaStreamTrack) -> None:
    """Consume a remote track we do not use: aiortc queues received frames without bound."""
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return
