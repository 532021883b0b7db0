"""One live session: a 25 fps clock fed by a producer that drives the engine ahead of it.

Threads and ownership (all owned by the Session, stopped and joined by ``close``):
* the **clock** thread ``clock-<id8>``: at t0 + n/25 it takes frame n from the FrameQueue (or, if
  it is not rendered yet, repeats the previous image and counts a stale tick — the clock never
  waits), takes frame n's audio from the SpeechSchedule, and hands the tick to the sink and to
  every subscriber. Audio comes from the timeline, not from the frames, so a late frame costs a
  repeated picture, never A/V drift.
* the **producer** pump: a job on the shared InferenceExecutor (at most one in flight per session,
  so per-session order holds). It keeps the engine's timeline audio ``horizon_frames`` ahead of
  the clock (engine lookahead + render margin): it claims speech or silence from the schedule,
  pushes it, and queues the returned frames, recording each frame's lateness (completion −
  deadline).

Public API for other edges (WebRTC tracks, WebSocket ingest, recordings):
* ``push_speech(pcm, sample_rate, final=False) -> FeedResult`` (thread-safe; call off the loop),
  ``finalize()``, ``interrupt() -> float`` (drops speech not yet rendered);
* ``subscribe(sub)`` / ``unsubscribe(sub)``: ``sub.publish(frame, audio)`` is called on the clock
  thread every tick (must not block; a raising subscriber is detached) and ``sub.close()`` when the
  session ends — a ``server.sinks.fanout.RingTickFanout`` fits as is;
* ``status()``, ``state``, ``playhead``, ``lateness``, ``touch()``, ``close(end_playlist)``.
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
from typing import Any, Protocol

import numpy as np

from models.engines.base import EngineStream
from models.types import FPS, SAMPLES_PER_FRAME, AudioSlice, Avatar, EngineParams, VideoFrame
from server.compute.executor import InferenceExecutor
from server.errors import SessionFinishedError
from server.session.audio.decode import DecodedAudio
from server.session.frames import FrameQueue, LatenessStats
from server.session.speech import SpeechSchedule
from server.session.state import SessionState, StateMachine
from server.session.timeline import Placement

log = logging.getLogger("facestream.session")

INTERRUPT_KEEP_FRAMES = 2
"""Frames after the playhead that still play after a barge-in (80 ms): the producer re-renders
from there, so the clock does not run out of rendered frames while it does."""


class TickSink(Protocol):
    """The session's primary output (HlsSink): one tick at a time, ended once."""

    def write(self, frame: VideoFrame, audio: AudioSlice) -> None: ...
    def end(self, timeout: float = ...) -> Any: ...
    def close(self) -> None: ...


class TickSubscriber(Protocol):
    """A secondary output (WebRTC fan-out, recorder). ``publish`` must return at once."""

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None: ...
    def close(self) -> None: ...


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
        executor: InferenceExecutor,
        config: SessionConfig,
        *,
        engine_name: str = "",
        raw_sample_rate: int = 24_000,
        chunk_duration: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
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
        self._created_mono = clock()
        self.last_activity = self._created_mono
        self._stream = stream
        self._sink = sink
        self._executor = executor
        self._state = StateMachine()
        self.lookahead = int(stream.lookahead_frames)
        # The producer's horizon (lookahead + margin) is kept shorter than the scheduling lead on
        # purpose: the difference is the arrival jitter a real-time feed may have while its chunks
        # still join the utterance gap-free (a chunk joins only while the engine has not listened
        # past the end of the speech before it).
        self.lead_frames = max(config.lead_frames, self.lookahead + 1)
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
        self._subscribers: list[TickSubscriber] = []
        self._subs_lock = threading.Lock()
        self._feed_lock = threading.Lock()
        self.feed_order = asyncio.Lock()  # routes hold it across decode+accept so chunks keep their order
        self._stop = threading.Event()
        self._pump_lock = threading.Lock()
        self._pump_busy = False
        self._pump_paused = False  # interrupt() holds the producer while it rewinds
        self._pump_idle = threading.Event()
        self._pump_idle.set()
        self._t0 = 0.0
        self._preroll_frames = 0
        self._playhead = 0
        self.ticks_emitted = 0
        self.stale_ticks = 0
        self.frames_rendered = 0
        self.speech_frames_emitted = 0
        self.error: str | None = None
        self._clock_thread: threading.Thread | None = None
        self._on_finished: list[Callable[[Session], None]] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._t0 = self._clock() - self.config.preroll_s
        self._preroll_frames = round(self.config.preroll_s * FPS)
        self._state.to(SessionState.STREAMING)
        self._maybe_pump()
        self._clock_thread = threading.Thread(
            target=self._run_clock, name=f"clock-{self.session_id[:8]}", daemon=True
        )
        self._clock_thread.start()

    def close(self, end_playlist: bool = False) -> None:
        """Stop the clock and the producer, end (or abort) the sink, release the engine. Idempotent.

        ``end_playlist``: write ``#EXT-X-ENDLIST`` (graceful shutdown) instead of just killing ffmpeg.
        """
        self._stop.set()
        if self._clock_thread is not None and self._clock_thread is not threading.current_thread():
            self._clock_thread.join(self.config.end_timeout_s)
        self._pump_idle.wait(10.0)
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
            placement = self.schedule.accept(audio, final, lambda: self._playhead)
            if final:
                self._state.to(SessionState.DRAINING)
            return FeedResult(placement, self.schedule.queued_samples(self._playhead), self._state.state)

    def push_pcm(self, pcm: np.ndarray, sample_rate: int, final: bool = False) -> FeedResult:
        """Raw mono PCM (int16 or float32 in [-1, 1]) at ``sample_rate``; e.g. from a WebSocket."""
        data = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
        return self.push_speech(DecodedAudio(np.clip(data, -1, 1), int(sample_rate), "raw"), final)

    def finalize(self) -> FeedResult:
        return self.push_speech(None, final=True)

    def interrupt(self) -> float:
        """Barge-in: drop queued and in-flight speech; returns the seconds dropped.

        With an engine stream that can ``rewind`` (the CPU engine), speech stops
        ``INTERRUPT_KEEP_FRAMES`` after the playhead: the producer is paused, frames rendered beyond
        that point are discarded, the timeline and the stream are rewound to it and re-render
        silence (idle). Other engines drop only what they have not consumed yet, so what is already
        rendered (at most the render horizon) still plays.
        """
        with self._feed_lock:
            rewind = getattr(self._stream, "rewind", None)
            if not callable(rewind):
                return self.schedule.interrupt()
            with self._pump_lock:
                self._pump_paused = True
            try:
                self._pump_idle.wait(10.0)
                # the stream has returned every frame before ``rendered_end``; cutting later than
                # that would leave frames nobody renders
                rendered_end = self.schedule.consumed // SAMPLES_PER_FRAME - self.lookahead
                cut = max(0, min(self._playhead + INTERRUPT_KEEP_FRAMES, rendered_end))
                dropped = self.schedule.interrupt(cut * SAMPLES_PER_FRAME)
                self.frames.discard_from(cut)
                rewind(cut)
            finally:
                with self._pump_lock:
                    self._pump_paused = False
            self._maybe_pump()
            return dropped

    # -- subscribers ---------------------------------------------------------------------------
    def subscribe(self, sub: TickSubscriber) -> None:
        with self._subs_lock:
            if self._state.state.terminal:
                raise SessionFinishedError("session has ended")
            self._subscribers.append(sub)

    def unsubscribe(self, sub: TickSubscriber) -> None:
        with self._subs_lock, contextlib.suppress(ValueError):
            self._subscribers.remove(sub)

    def _close_subscribers(self) -> None:
        with self._subs_lock:
            subs, self._subscribers = self._subscribers, []
        for sub in subs:
            with contextlib.suppress(Exception):
                sub.close()

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
        return self._playhead

    @property
    def t0(self) -> float:
        """Monotonic deadline of frame 0; frame n is due at t0 + n/25."""
        return self._t0

    def touch(self) -> None:
        self.last_activity = self._clock()

    def idle_seconds(self, now: float | None = None) -> float:
        return (self._clock() if now is None else now) - self.last_activity

    def status(self) -> dict[str, Any]:
        queued = self.schedule.queued_samples(self._playhead)
        return {
            "session_id": self.session_id,
            "status": str(self._state.state),
            "total_frames_generated": self.ticks_emitted,
            "buffer_samples": queued,
            "error": self.error,
            "created_at": self.created_at,
            "uptime_seconds": round(self._clock() - self._created_mono, 3),
            "engine": self.engine_name,
            "queued_speech_seconds": round(queued / 16000, 3),
            "speech_seconds_accepted": round(self.schedule.speech_samples_accepted / 16000, 3),
            "frames_rendered": self.frames_rendered,
            "speech_frames_emitted": self.speech_frames_emitted,
            "stale_ticks": self.stale_ticks,
            "lateness_ms": self.lateness.summary_ms(),
            "lead_ms": round(self.lead_frames * 1000 / FPS),
            "render_horizon_ms": round(self.horizon_frames * 1000 / FPS),
            "chunk_duration": self.chunk_duration,
            "audio_sample_rate": self.raw_sample_rate,
            "width": self.avatar.size[0],
            "height": self.avatar.size[1],
        }

    # -- clock ---------------------------------------------------------------------------------
    def _run_clock(self) -> None:
        previous = self.avatar.image
        n = 0
        try:
            while True:
                end = self.schedule.end_frame
                if end is not None and n >= end:
                    break
                delay = self._t0 + n / FPS - self._clock()
                if (delay > 0 and self._stop.wait(delay)) or self._stop.is_set():
                    if self._state.state is SessionState.FAILED:  # tell viewers the stream is over
                        with contextlib.suppress(Exception):
                            self._sink.end(self.config.end_timeout_s)
                    return
                frame = self.frames.take(n)
                if frame is None:
                    self.stale_ticks += n >= self._preroll_frames
                    frame = VideoFrame(n, previous, speech=self.schedule.is_speech_frame(n))
                previous = frame.image
                audio = AudioSlice(n, self.schedule.output_slice(n), self.config.out_rate)
                self._sink.write(frame, audio)
                self._publish(frame, audio)
                n += 1
                self._playhead = n
                self.ticks_emitted = n
                self.speech_frames_emitted += int(frame.speech)
                self._maybe_pump()
            self._stop.set()
            self._pump_idle.wait(10.0)
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

    def _publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        with self._subs_lock:
            subs = list(self._subscribers)
        for sub in subs:
            try:
                sub.publish(frame, audio)
            except Exception:
                log.exception("session %s: subscriber %r failed; detached", self.session_id, sub)
                self.unsubscribe(sub)
                with contextlib.suppress(Exception):
                    sub.close()

    def _fail(self, message: str) -> None:
        if self._state.try_to(SessionState.FAILED):
            self.error = message
            log.error("session %s failed: %s", self.session_id, message)
        self._stop.set()

    # -- producer ------------------------------------------------------------------------------
    def _target(self) -> int:
        return (self._playhead + self.horizon_frames) * SAMPLES_PER_FRAME

    def _maybe_pump(self) -> None:
        with self._pump_lock:
            if self._pump_busy or self._pump_paused or self._stop.is_set():
                return
            due = self._target() - self.schedule.consumed
            if due < self.config.min_push_frames * SAMPLES_PER_FRAME and self._playhead > 0:
                return
            if due <= 0:
                return
            self._pump_busy = True
            self._pump_idle.clear()
        first = self.schedule.consumed // SAMPLES_PER_FRAME - self.lookahead
        try:
            self._executor.submit(self._t0 + first / FPS, self._pump)
        except Exception as e:
            self._pump_done()
            self._fail(f"cannot schedule inference: {e}")

    def _pump_done(self) -> None:
        with self._pump_lock:
            self._pump_busy = False
            self._pump_idle.set()

    def _pump(self) -> None:
        try:
            while not self._stop.is_set() and not self._pump_paused:
                want = self._target() - self.schedule.consumed
                if want <= 0:
                    break
                claim = self.schedule.claim(want)
                frames = self._stream.push_audio(claim.pcm, claim.context)
                now = self._clock()
                for f in frames:
                    if f.index >= self._preroll_frames:
                        self.lateness.add(now - (self._t0 + f.index / FPS))
                    self.frames.put(f)
                self.frames_rendered += len(frames)
        except Exception as e:
            log.exception("session %s: engine push failed", self.session_id)
            self._fail(f"engine failed: {e}")
        finally:
            self._pump_done()
