"""Whole-audio rendering on the shared InferenceExecutor, behind live sessions.

Why steps instead of one long job: the executor schedules earliest deadline first, and a job cannot be
pre-empted once it runs. A whole-audio render is cut into pushes of ``step_frames`` frames, each
submitted as its own job with a deadline ``defer_s`` in the future. Live sessions submit jobs due
within a few hundred milliseconds, so they always win the next free worker; a render holds at most
one worker for one step at a time, and because its deadline is fixed at submission it cannot be
starved forever (it ages past newer live jobs after ``defer_s``).

``OfflineRender`` owns nothing but the engine stream it is given; its sink (``Mp4Writer`` or
``HlsSink``) and the completion policy belong to the caller (``on_done`` is called exactly once,
on a worker thread, with ``None`` or the exception that stopped the render).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr

from hls.ticks import samples_for_tick
from models.engines.base import EngineStream, PinnedToWorker
from models.types import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME, AudioSlice, VideoFrame
from server.compute.executor import InferenceExecutor
from server.session.audio.decode import DecodedAudio

STEP_FRAMES = 10
"""Frames per job: ~0.1 s of CPU-engine work, so a live job waits at most that for a worker."""


class RenderCancelledError(Exception):
    """The render was cancelled (client gone, session deleted) before it finished."""


class TickWriter(Protocol):
    def write(self, frame: VideoFrame, audio: AudioSlice) -> None: ...


@dataclass(frozen=True, slots=True)
class TimelineAudio:
    """A whole clip on the engine's timeline: ``frames`` × 1/25 s, padded with silence at the end.

    ``engine_pcm`` is float32 at 16 kHz (what the engine hears); ``output_pcm`` is int16 at
    ``out_rate`` (what the viewer hears), exactly ``frames × out_rate / 25`` samples long.
    """

    engine_pcm: np.ndarray
    output_pcm: np.ndarray
    out_rate: int
    frames: int
    seconds: float  # the clip's own duration before padding

    @classmethod
    def from_decoded(cls, audio: DecodedAudio, out_rate: int) -> TimelineAudio:
        pcm16 = soxr.resample(audio.pcm, audio.sample_rate, ENGINE_SAMPLE_RATE).astype(np.float32)
        frames = max(1, math.ceil(len(pcm16) / SAMPLES_PER_FRAME))
        pcm16 = np.pad(pcm16, (0, frames * SAMPLES_PER_FRAME - len(pcm16)))
        out = soxr.resample(audio.pcm, audio.sample_rate, out_rate).astype(np.float32)
        total = frames * out_rate // FPS
        out = np.pad(out, (0, max(0, total - len(out))))[:total]
        out16 = np.clip(np.round(out * 32767), -32768, 32767).astype(np.int16)
        return cls(pcm16, out16, out_rate, frames, audio.duration)

    def slice_for(self, index: int) -> AudioSlice:
        start = index * self.out_rate // FPS
        count = samples_for_tick(index, self.out_rate, FPS)
        return AudioSlice(index, self.output_pcm[start : start + count], self.out_rate)


class OfflineRender:
    """Drives ``stream`` over ``audio`` as fast as free workers allow, writing every frame to ``sink``."""

    def __init__(
        self,
        stream: EngineStream,
        audio: TimelineAudio,
        sink: TickWriter,
        executor: InferenceExecutor,
        on_done: Callable[[BaseException | None], None],
        *,
        step_frames: int = STEP_FRAMES,
        defer_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._lane = stream.worker_slot if isinstance(stream, PinnedToWorker) else None
        self.audio = audio
        self._sink = sink
        self._executor = executor
        self._on_done = on_done
        self._step = max(1, step_frames) * SAMPLES_PER_FRAME
        self._defer = defer_s
        self._clock = clock
        self._pos = 0
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self.frames_written = 0
        self.started_at = 0.0
        self.finished_at: float | None = None

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def render_seconds(self) -> float:
        end = self.finished_at if self.finished_at is not None else self._clock()
        return max(0.0, end - self.started_at) if self.started_at else 0.0

    @property
    def speed(self) -> float:
        """× real time so far."""
        elapsed = self.render_seconds
        return self.frames_written / FPS / elapsed if elapsed > 0 else 0.0

    def start(self) -> None:
        self.started_at = self._clock()
        self._submit()

    def cancel(self) -> None:
        """Stop at the next step boundary (``on_done`` then gets RenderCancelledError)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def _submit(self) -> None:
        try:
            self._executor.submit(self._clock() + self._defer, self._run_step, lane=self._lane)
        except Exception as e:  # executor closed or full: the render cannot go on
            self._finish(e)

    def _run_step(self) -> None:
        if self._cancel.is_set():
            self._finish(RenderCancelledError("render cancelled"))
            return
        try:
            pcm = self.audio.engine_pcm
            chunk = pcm[self._pos : self._pos + self._step]
            self._pos += len(chunk)
            last = self._pos >= len(pcm)
            frames = self._stream.push_audio(chunk) if len(chunk) else []
            if last:
                frames = frames + self._stream.flush()
            for f in frames:
                if f.index < self.audio.frames:
                    self._sink.write(f, self.audio.slice_for(f.index))
                    self.frames_written += 1
            if last:
                if self.frames_written != self.audio.frames:
                    raise RuntimeError(
                        f"engine returned {self.frames_written} frames for {self.audio.frames} audio frames"
                    )
                self._finish(None)
                return
        except Exception as e:
            self._finish(e)
            return
        self._submit()

    def _finish(self, error: BaseException | None) -> None:
        if self._finished.is_set():
            return
        self.finished_at = self._clock()
        try:
            self._on_done(error)
        finally:
            self._finished.set()
