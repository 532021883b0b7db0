"""One live session: lifecycle, speech in, subscribers, status — a clock fed by a producer.

The two moving parts live in their own modules, each testable without real time:
* ``server.session.clock.SessionClock`` — the **clock** thread ``clock-<id8>``: at t0 + n/25 it
  takes frame n from the FrameQueue (or repeats the previous picture: a stale tick — the clock
  never waits), takes frame n's audio from the SpeechSchedule and hands the tick to the sink and
  every subscriber. Time comes from an injected ``Clock`` (``MONOTONIC`` in production,
  ``tests.support.clock.SteppedClock`` in unit tests).
* ``server.session.producer.Producer`` — the **producer** pump, a job on the shared
  earliest-deadline-first executor (at most one in flight per session): it keeps the engine's
  timeline audio ``horizon_frames`` ahead of the clock and queues the frames it returns, skipping
  frames that could no longer make their tick (no cliff past capacity).

This class owns both (and every thread: stopped and joined by ``close``) and is what the rest of
the server sees (``server.session.base.SessionLike``):
* ``push_speech(audio, final=False) -> FeedResult`` / ``push_pcm`` (thread-safe; call off the
  loop), ``finalize()``, ``interrupt() -> float`` (drops speech not yet rendered);
* ``subscribe(sub)`` / ``unsubscribe(sub)``: ``sub.publish(frame, audio)`` is called on the clock
  thread every tick (must not block; a raising subscriber is detached) and ``sub.close()`` when the
  session ends — a ``server.sinks.fanout.RingTickFanout`` fits as is;
* ``status()``, ``load()``, ``state``, ``playhead``, ``lateness``, ``touch()``, ``close(end_playlist)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hls.base import TickSink
from models.engines.base import EngineStream
from models.types import FPS, SAMPLES_PER_FRAME, Avatar, EngineParams
from server.errors import SessionFinishedError
from server.session.audio.decode import DecodedAudio
from server.session.base import SessionLoad
from server.session.clock import MONOTONIC, Clock, SessionClock, Subscribers, TickCounters, TickSubscriber
from server.session.frames import FrameQueue, LatenessStats
from server.session.producer import JobRunner, Producer
from server.session.speech import SpeechSchedule
from server.session.state import SessionState, StateMachine
from server.session.timeline import Placement

log = logging.getLogger("facestream.session")

__all__ = ["INTERRUPT_KEEP_FRAMES", "FeedResult", "Session", "SessionConfig", "TickSink", "TickSubscriber"]

INTERRUPT_KEEP_FRAMES = 2
"""Frames after the playhead that still play after a barge-in (80 ms): the producer re-renders
from there, so the clock does not run out of rendered frames while it does."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    lead_frames: int  # a new utterance starts at least this far ahead of the playhead
    window_samples: int  # AudioChunkBuffer window (chunk_duration at 16 kHz)
    max_pending_samples: int  # queued-speech bound at 16 kHz
    overlap: float = 0.2
    render_margin_frames: int = 3  # the producer renders this far beyond the engine's lookahead
    out_rate: int = 48_000
    min_push_frames: int = 2  # the producer wakes when at least this much audio is due
    preroll_s: float = 0.3
    """The first ``preroll_s`` of the timeline (idle) is emitted at once instead of in real time,
    so the first HLS segment is published that much sooner. Those frames are the avatar at rest
    (rendered if ready, else its still image) and are left out of the lateness statistics."""
    end_timeout_s: float = 15.0


@dataclass(frozen=True, slots=True)
class FeedResult:
    placement: Placement | None
    queued_samples: int  # speech not yet played, at 16 kHz
    state: SessionState


class Session:
    def __init__(
        self,
        session_id: str,
        directory: Path,
        avatar: Avatar,
        params: EngineParams,
        stream: EngineStream,
        sink: TickSink,
        executor: JobRunner,
        config: SessionConfig,
        *,
        engine_name: str = "",
        raw_sample_rate: int = 24_000,
        chunk_duration: float = 1.0,
        clock: Clock = MONOTONIC,
    ) -> None:
        self.session_id = session_id
        self.directory = directory
        self.avatar = avatar
        self.params = params
        self.engine_name = engine_name
        self.raw_sample_rate = raw_sample_rate
        self.chunk_duration = chunk_duration
        self.config = config
        self.created_at = time.time()
        self._clock = clock
        self._created_mono = clock.now()
        self.last_activity = self._created_mono
        self._stream = stream
        self._sink = sink
        self._state = StateMachine()
        self.lookahead = int(stream.lookahead_frames)
        # The producer's horizon (lookahead + margin) is kept shorter than the scheduling lead on
        # purpose: the difference is the arrival jitter a real-time feed may have while its chunks
        # still join the utterance gap-free (a chunk joins only while the engine has not listened
        # past the end of the speech before it).
        # An engine that needs more lookahead than the configured lead planned for raises the lead
        # so that its render margin and one frame of jitter slack survive (issue 17: the 200 ms
        # default lead = the CPU engine's 80 ms live lookahead + 80 ms margin + 40 ms slack; a
        # 200 ms-lookahead engine gets 320 ms, not 240 ms with frames rendered a tick ahead).
        self.lead_frames = max(config.lead_frames, self.lookahead + max(1, config.render_margin_frames) + 1)
        self.horizon_frames = min(self.lead_frames, self.lookahead + max(1, config.render_margin_frames))
        self.schedule = SpeechSchedule(
            self.lead_frames,
            config.window_samples,
            config.max_pending_samples,
            config.overlap,
            config.out_rate,
        )
        self.frames = FrameQueue(capacity=self.lead_frames + config.window_samples // SAMPLES_PER_FRAME + 64)
        self.lateness = LatenessStats()
        self._subscribers = Subscribers(session_id)
        self._subs_lock = threading.Lock()  # subscribe vs. the end of the session
        self._feed_lock = threading.Lock()
        self.feed_order = asyncio.Lock()  # routes hold it across decode+accept so chunks keep their order
        self._stop = threading.Event()
        self._ticker = SessionClock(
            clock, self.frames, self.schedule, sink, self._subscribers, avatar.image, config.out_rate,
            on_tick=lambda _playhead: self._producer.maybe_pump(),
        )  # fmt: skip
        self._producer = Producer(
            session_id, stream, self.schedule, self.frames, self.lateness, executor, clock,
            horizon_frames=self.horizon_frames,
            min_push_frames=config.min_push_frames,
            playhead=lambda: self._ticker.playhead,
            deadlines=lambda: self._ticker.deadlines,
            counts_lateness=lambda index: index >= self._ticker.preroll_frames,
            stop=self._stop,
            on_error=self._fail,
        )  # fmt: skip
        self.error: str | None = None
        self._clock_thread: threading.Thread | None = None
        self._on_finished: list[Callable[[Session], None]] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, *, thread: bool = True) -> None:
        """Start the timeline now: pre-roll, the first pump, the clock thread.

        ``thread=False`` (unit tests) leaves the clock loop to the caller: ``run_clock()``.
        """
        self._ticker.start_at(self._clock.now() - self.config.preroll_s, round(self.config.preroll_s * FPS))
        self._state.to(SessionState.STREAMING)
        self._producer.maybe_pump()
        if thread:
            self._clock_thread = threading.Thread(
                target=self.run_clock, name=f"clock-{self.session_id[:8]}", daemon=True
            )
            self._clock_thread.start()

    def close(self, end_playlist: bool = False) -> None:
        """Stop the clock and the producer, end (or abort) the sink, release the engine. Idempotent.

        ``end_playlist``: write ``#EXT-X-ENDLIST`` (graceful shutdown) instead of just killing ffmpeg.
        """
        self._stop.set()
        if self._clock_thread is not None and self._clock_thread is not threading.current_thread():
            self._clock_thread.join(self.config.end_timeout_s)
        self._producer.wait_idle(10.0)
        if end_playlist and self._state.state in (SessionState.STREAMING, SessionState.DRAINING):
            with contextlib.suppress(Exception):
                self._sink.end(self.config.end_timeout_s)
        self._sink.close()
        self._close_subscribers()
        with contextlib.suppress(Exception):
            self._stream.close()
        self._state.try_to(SessionState.CLOSED)

    def on_finished(self, callback: Callable[[Session], None]) -> None:
        """Call ``callback(session)`` (on the clock thread) once the session completes or fails."""
        self._on_finished.append(callback)

    def run_clock(self) -> None:
        """The clock thread's body: tick until the end of speech (complete) or ``close`` / failure."""
        try:
            if not self._ticker.run(self._stop):
                if self._state.state is SessionState.FAILED:  # tell viewers the stream is over
                    with contextlib.suppress(Exception):
                        self._sink.end(self.config.end_timeout_s)
                return
            self._stop.set()
            self._producer.wait_idle(10.0)
            self._sink.end(self.config.end_timeout_s)
            self._state.to(SessionState.COMPLETE)
        except Exception as e:
            self._fail(f"stream failed: {e}")
        finally:
            if self._state.state in (SessionState.COMPLETE, SessionState.FAILED):
                self._close_subscribers()
                for cb in self._on_finished:
                    with contextlib.suppress(Exception):
                        cb(self)

    # -- speech in -----------------------------------------------------------------------------
    def push_speech(self, audio: DecodedAudio | None, final: bool = False) -> FeedResult:
        """Schedule decoded speech after what is queued (thread-safe; resamples, so call off the loop).

        Raises SessionFinishedError once the final chunk was accepted or the session ended, and
        SpeechQueueFullError (nothing accepted) when the queued-speech bound would be exceeded.
        """
        with self._feed_lock:
            state = self._state.state
            if not state.accepts_speech or self.schedule.final:
                raise SessionFinishedError(f"session is {state}; it no longer accepts audio")
            self.touch()
            placement = self.schedule.accept(audio, final, lambda: self._ticker.playhead)
            if final:
                self._state.to(SessionState.DRAINING)
            queued = self.schedule.queued_samples(self._ticker.playhead)
            return FeedResult(placement, queued, self._state.state)

    def push_pcm(self, pcm: np.ndarray, sample_rate: int, final: bool = False) -> FeedResult:
        """Raw mono PCM (int16 or float32 in [-1, 1]) at ``sample_rate``; e.g. from a WebSocket."""
        data = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
        return self.push_speech(DecodedAudio(np.clip(data, -1, 1), int(sample_rate), "raw"), final)

    def finalize(self) -> FeedResult:
        return self.push_speech(None, final=True)

    def interrupt(self) -> float:
        """Barge-in: drop queued and in-flight speech; returns the seconds dropped.

        With an engine stream that can rewind (``models.engines.base.Rewindable``, the CPU engine),
        speech stops ``INTERRUPT_KEEP_FRAMES`` after the playhead: the producer is paused, frames
        rendered beyond that point are discarded, the timeline and the stream are rewound to it and
        re-render silence (idle). Other engines drop only what they have not consumed yet, so what
        is already rendered (at most the render horizon) still plays.
        """
        with self._feed_lock:
            return self._producer.rewind(INTERRUPT_KEEP_FRAMES)

    # -- subscribers ---------------------------------------------------------------------------
    def subscribe(self, sub: TickSubscriber) -> None:
        with self._subs_lock:
            if self._state.state.terminal:
                raise SessionFinishedError("session has ended")
            self._subscribers.add(sub)

    def unsubscribe(self, sub: TickSubscriber) -> None:
        self._subscribers.remove(sub)

    def _close_subscribers(self) -> None:
        with self._subs_lock:
            self._subscribers.close_all()

    # -- queries -------------------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self._state.state

    @property
    def sink(self) -> TickSink:
        """The primary output, read-only (the LL-HLS routes reach its timeline through it)."""
        return self._sink

    @property
    def playhead(self) -> int:
        """The next frame the clock will emit (= frames emitted so far)."""
        return self._ticker.playhead

    @property
    def t0(self) -> float:
        """Monotonic deadline of frame 0; frame n is due at t0 + n/25."""
        return self._ticker.t0

    @property
    def ticks(self) -> TickCounters:
        """The clock's counters (stale ticks, frozen runs, effective frame rate)."""
        return self._ticker.counters

    @property
    def ticks_emitted(self) -> int:
        return self._ticker.counters.ticks_emitted

    @property
    def stale_ticks(self) -> int:
        return self._ticker.counters.stale_ticks

    @property
    def speech_frames_emitted(self) -> int:
        return self._ticker.counters.speech_frames_emitted

    @property
    def frames_rendered(self) -> int:
        return self._producer.frames_rendered

    @property
    def frames_skipped(self) -> int:
        """Frames the producer did not render because they could no longer make their tick."""
        return self._producer.frames_skipped

    @property
    def producer_fast_forwarded(self) -> int:
        """Frames whose audio the producer never analysed: it jumped ahead after falling behind."""
        return self._producer.frames_fast_forwarded

    def load(self) -> SessionLoad:
        """Counters and queue depths for ``/metrics`` (``server.session.base.SessionLike``)."""
        live = not self._state.state.terminal
        return SessionLoad(
            ticks_emitted=self.ticks_emitted,
            frames_rendered=self.frames_rendered,
            stale_ticks=self.stale_ticks,
            speech_frames_emitted=self.speech_frames_emitted,
            frames_queued=len(self.frames) if live else 0,
            encoder_ticks_queued=self._sink.queued_ticks if live else 0,
            queued_speech_seconds=self.schedule.queued_samples(self.playhead) / 16000 if live else 0.0,
            lateness_p99_ms=self.lateness.summary_ms()["p99"] if live else None,
        )

    def touch(self) -> None:
        self.last_activity = self._clock.now()

    def idle_seconds(self, now: float | None = None) -> float:
        return (self._clock.now() if now is None else now) - self.last_activity

    def status(self) -> dict[str, Any]:
        queued = self.schedule.queued_samples(self.playhead)
        ticks = self._ticker.counters
        return {
            "session_id": self.session_id,
            "status": str(self._state.state),
            "total_frames_generated": ticks.ticks_emitted,
            "buffer_samples": queued,
            "error": self.error,
            "created_at": self.created_at,
            "uptime_seconds": round(self._clock.now() - self._created_mono, 3),
            "engine": self.engine_name,
            "queued_speech_seconds": round(queued / 16000, 3),
            "speech_seconds_accepted": round(self.schedule.speech_samples_accepted / 16000, 3),
            "frames_rendered": self.frames_rendered,
            "frames_skipped": self.frames_skipped,
            "frames_fast_forwarded": self._producer.frames_fast_forwarded,
            "speech_frames_emitted": ticks.speech_frames_emitted,
            "stale_ticks": ticks.stale_ticks,
            "stale_speech_ticks": ticks.stale_speech_ticks,
            "longest_stale_run_ms": ticks.longest_stale_run * 1000 // FPS,
            "effective_fps": round(ticks.effective_fps, 2),
            "lateness_ms": self.lateness.summary_ms(),
            "lead_ms": round(self.lead_frames * 1000 / FPS),
            "render_horizon_ms": round(self.horizon_frames * 1000 / FPS),
            "chunk_duration": self.chunk_duration,
            "audio_sample_rate": self.raw_sample_rate,
            "width": self.avatar.size[0],
            "height": self.avatar.size[1],
        }

    def _fail(self, message: str) -> None:
        if self._state.try_to(SessionState.FAILED):
            self.error = message
            log.error("session %s failed: %s", self.session_id, message)
        self._stop.set()
