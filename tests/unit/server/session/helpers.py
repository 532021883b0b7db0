"""A live ``Session`` on virtual time: probe engine streams, a recording sink, the factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.types import SAMPLES_PER_FRAME, AudioSlice, EngineParams, VideoFrame
from server.session.session import Session, SessionConfig
from tests.support.clock import SteppedClock
from tests.support.engines import ProbeEngine, ProbeStream

SPEECH_RATE = 16_000


class RecordingSink:
    """The session's primary output, in memory: every tick's frame index, picture and audio."""

    def __init__(self) -> None:
        self.ticks: list[tuple[VideoFrame, AudioSlice]] = []
        self.ended = False
        self.closed = False

    def start(self) -> object:
        return None

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None:
        self.ticks.append((frame, audio))

    def end(self, timeout: float = 10.0) -> object:
        self.ended = True
        return None

    def close(self) -> None:
        self.closed = True

    @property
    def segment_paths(self) -> list[Path]:
        return []

    @property
    def published_count(self) -> int:
        return 0

    @property
    def queued_ticks(self) -> int:
        return 0

    def picture_of(self, tick: int) -> int:
        """The timeline frame whose picture tick ``tick`` showed (read off the probe's barcode)."""
        from hls.barcode import read_barcode

        return read_barcode(self.ticks[tick][0].image)


class RewindableProbe(ProbeStream):
    """ProbeStream that can rewind (``models.engines.base.Rewindable``) like the CPU engine."""

    def rewind(self, frame_index: int) -> None:
        self._audio = np.zeros(0, np.float32)
        self._base = self.pushed = frame_index * SAMPLES_PER_FRAME
        self._next = frame_index


class TimedProbe(ProbeStream):
    """A probe whose every rendered frame takes ``cost_s`` of virtual time, while the clock ticks
    on (``SteppedClock.catch_up``), optionally able to skip frames (``SkipsFrames``)."""

    def __init__(self, clock: SteppedClock, cost_s: float, size: int = 128, lookahead: int = 3) -> None:
        super().__init__(size, lookahead, 0.0)
        self._vclock = clock
        self._render_cost = cost_s
        self.rendered: list[int] = []

    def _spend(self, frames: list[VideoFrame]) -> list[VideoFrame]:
        for f in frames:
            self._vclock.advance(self._render_cost)
            self._vclock.catch_up()
            self.rendered.append(f.index)
        return frames

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        return self._spend(super().push_audio(pcm, context))


class SkippingTimedProbe(TimedProbe):
    def push_audio_skipping(
        self, pcm: np.ndarray, skip: Callable[[int], bool], context: np.ndarray | None = None
    ) -> list[VideoFrame]:
        out = []
        for f in ProbeStream.push_audio(self, pcm, context):  # "motion" for every frame, in order
            if not skip(f.index):
                out.extend(self._spend([f]))
        return out


def make_session(
    clock: SteppedClock,
    runner: object,
    stream: ProbeStream | None = None,
    *,
    lead_frames: int = 10,
    margin: int = 3,
    window_s: float = 0.5,
) -> tuple[Session, RecordingSink]:
    engine = ProbeEngine(size=128, lookahead=3)
    avatar = engine.prepare(np.zeros((128, 128, 3), np.uint8), EngineParams())
    sink = RecordingSink()
    window = round(window_s * SPEECH_RATE)
    config = SessionConfig(
        lead_frames=lead_frames,
        window_samples=window,
        max_pending_samples=SPEECH_RATE * 30,
        render_margin_frames=margin,
    )
    session = Session(
        "0123456789abcdef", Path("/nonexistent"), avatar, EngineParams(),
        stream if stream is not None else engine.open_stream(avatar, EngineParams()),
        sink, runner, config, clock=clock,  # type: ignore[arg-type]
    )  # fmt: skip
    return session, sink


def speech(seconds: float, rate: int = SPEECH_RATE) -> np.ndarray:
    """A loud 220 Hz tone (the probe marks frames with RMS > 0.01 as speech)."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


class StallingProbe(SkippingTimedProbe):
    """Audio→motion costs ``motion_s`` of virtual time per frame of audio (the clock ticks on),
    rendering ``cost_s``; at frame ``stall_at`` one push stalls ``stall_s`` (a noisy neighbour).
    ``rewinds``: also Rewindable (as the CPU engine is), so the producer may jump ahead."""

    def __init__(
        self, clock: SteppedClock, motion_s: float, cost_s: float, stall_at: int, stall_s: float
    ) -> None:
        super().__init__(clock, cost_s)
        self._motion_s = motion_s
        self._stall_at, self._stall_s = stall_at, stall_s

    def push_audio_skipping(
        self, pcm: np.ndarray, skip: Callable[[int], bool], context: np.ndarray | None = None
    ) -> list[VideoFrame]:
        self._vclock.advance(self._motion_s * len(pcm) / SAMPLES_PER_FRAME)
        if self._stall_s and self.pushed >= self._stall_at * SAMPLES_PER_FRAME:
            self._vclock.advance(self._stall_s)
            self._stall_s = 0.0
        self._vclock.catch_up()
        return super().push_audio_skipping(pcm, skip, context)


class RewindableStallingProbe(StallingProbe):
    def rewind(self, frame_index: int) -> None:
        RewindableProbe.rewind(self, frame_index)  # type: ignore[arg-type]
