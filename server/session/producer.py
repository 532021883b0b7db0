"""The producer: keeps a session's engine stream ``horizon`` frames ahead of the clock.

One pump job at a time per session runs on the shared earliest-deadline-first executor (so
per-session order holds and the queue stays bounded): it claims the next speech or silence from
the SpeechSchedule, pushes it to the engine stream and queues the returned frames in the
FrameQueue for the clock, recording each frame's lateness (completion − deadline).

No cliff past capacity: when compute falls behind (overload, a noisy neighbour), rendering a
frame whose tick will have passed by the time it is done is pure waste — the clock shows the
previous picture in its place anyway, and the CPU it burns makes the *next* frames late too,
which is how a few percent of stale ticks became 90 % one session later. A stream that can
(``models.engines.base.SkipsFrames``, the CPU engine) is therefore asked, frame by frame just
before rendering, whether the frame can still make its tick (``LateFrameFilter``); frames that
cannot are skipped: motion still advances through them (the lips stay in sync with the audio),
only their pixels are never made. The stream degrades to a lower effective frame rate — the
earliest-deadline executor spreads that evenly over the sessions, and within a session the
policy thins a lasting overload to every 2nd-4th frame instead of bursts with long repeats
(``LatePolicy``) — instead of a frozen face.

Barge-in (``rewind``) pauses the pump, discards frames beyond the cut and rewinds the stream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from models.engines.base import EngineStream, PinnedToWorker, Rewindable, SkipsFrames, StreamsLateFrames
from models.engines.skipping import LatePolicy, TickDeadlines
from models.types import SAMPLES_PER_FRAME, VideoFrame
from server.session.clock import Clock, MonotonicClock
from server.session.frames import FrameQueue, LatenessStats
from server.session.speech import SpeechSchedule

log = logging.getLogger("facestream.session")


class JobRunner(Protocol):
    """Where pump jobs run: ``server.compute.executor.InferenceExecutor`` (earliest deadline first)."""

    def submit(self, deadline: float, job: Callable[[], None], lane: int | None = None) -> None: ...


FAST_FORWARD_FRAMES = 2
"""The producer jumps ahead (``Producer._fast_forward``) once its next frame is this far behind."""


class LateFrameFilter:
    """Per session: is a frame about to be rendered already too late for its tick?

    The decision itself is ``models.engines.skipping.LatePolicy`` (pure, so a worker process can
    run it too); this binds it to the session's clock and deadlines for streams that ask frame by
    frame (``SkipsFrames``).
    """

    def __init__(self, clock: Clock, deadline_of: Callable[[int], float], max_skip_run: int = 4) -> None:
        self._clock = clock
        self._deadline_of = deadline_of
        self.policy = LatePolicy(max_skip_run)

    @property
    def estimate_s(self) -> float:
        return self.policy.estimate_s

    @property
    def skipped(self) -> int:
        return self.policy.skipped

    def begin(self) -> None:
        self.policy.begin()

    def end(self) -> None:
        self.policy.end(self._clock.now())

    def __call__(self, index: int) -> bool:
        """True = skip frame ``index`` (advance motion, render nothing)."""
        return self.policy.decide(self._clock.now(), self._deadline_of(index), index)


class Producer:
    """Drives one engine stream ahead of the clock. ``playhead`` and ``deadline`` come from the
    clock; ``on_error(message)`` fails the session."""

    def __init__(
        self,
        name: str,
        stream: EngineStream,
        schedule: SpeechSchedule,
        frames: FrameQueue,
        lateness: LatenessStats,
        runner: JobRunner,
        clock: Clock,
        *,
        horizon_frames: int,
        min_push_frames: int,
        playhead: Callable[[], int],
        deadlines: Callable[[], TickDeadlines],
        counts_lateness: Callable[[int], bool],
        stop: threading.Event,
        on_error: Callable[[str], None],
    ) -> None:
        self._name = name
        self._stream = stream
        self._schedule = schedule
        self._frames = frames
        self._lateness = lateness
        self._runner = runner
        self._clock = clock
        self.horizon_frames = horizon_frames
        self.lookahead = int(stream.lookahead_frames)
        self._min_push = min_push_frames * SAMPLES_PER_FRAME
        self._playhead = playhead
        self._deadlines = deadlines  # read at each use: the clock fixes t0 only when it starts
        self._counts_lateness = counts_lateness
        self._stop = stop
        self._on_error = on_error
        self.late_filter = LateFrameFilter(clock, self._deadline)
        self._skips = isinstance(stream, SkipsFrames)
        # a stream made in a worker process decides skips there, on the host's monotonic clock,
        # which must then be the session's clock too (tests step a clock of their own)
        self._remote_skips = isinstance(stream, StreamsLateFrames) and isinstance(clock, MonotonicClock)
        self._lane = stream.worker_slot if isinstance(stream, PinnedToWorker) else None
        self._lock = threading.Lock()
        self._busy = False
        self._paused = False
        self._idle = threading.Event()
        self._idle.set()
        self.frames_rendered = 0
        self.frames_fast_forwarded = 0

    @property
    def frames_skipped(self) -> int:
        """Frames not rendered because they could no longer make their tick."""
        return self.late_filter.skipped

    def target(self) -> int:
        """Timeline sample the stream should have consumed: ``horizon`` frames past the playhead."""
        return (self._playhead() + self.horizon_frames) * SAMPLES_PER_FRAME

    def maybe_pump(self) -> None:
        """Submit a pump job if enough audio is due and none is queued or running (any thread)."""
        with self._lock:
            if self._busy or self._paused or self._stop.is_set():
                return
            due = self.target() - self._schedule.consumed
            if due <= 0 or (due < self._min_push and self._playhead() > 0):
                return
            self._busy = True
            self._idle.clear()
        first = self._schedule.consumed // SAMPLES_PER_FRAME - self.lookahead
        try:
            self._runner.submit(self._deadline(first), self._pump, lane=self._lane)
        except Exception as e:
            self._done()
            self._on_error(f"cannot schedule inference: {e}")

    def wait_idle(self, timeout: float) -> bool:
        """Block until no pump job is queued or running."""
        return self._idle.wait(timeout)

    def rewind(self, cut_after_playhead: int) -> float:
        """Barge-in: drop speech from ``cut_after_playhead`` frames after the playhead on; returns
        the seconds dropped. With a ``Rewindable`` stream the frames beyond the cut are discarded
        and re-rendered as idle; other streams drop only what they have not consumed yet."""
        stream = self._stream
        if not isinstance(stream, Rewindable):
            return self._schedule.interrupt()
        with self._lock:
            self._paused = True
        try:
            self._idle.wait(10.0)
            # the stream has returned every frame before ``rendered_end``; cutting later than
            # that would leave frames nobody renders
            rendered_end = self._schedule.consumed // SAMPLES_PER_FRAME - self.lookahead
            cut = max(0, min(self._playhead() + cut_after_playhead, rendered_end))
            dropped = self._schedule.interrupt(cut * SAMPLES_PER_FRAME)
            self._frames.discard_from(cut)
            stream.rewind(cut)
        finally:
            with self._lock:
                self._paused = False
        self.maybe_pump()
        return dropped

    def _fast_forward(self) -> None:
        """When even the audio→motion work falls behind the clock (the engine's next frame is due
        more than ``FAST_FORWARD_FRAMES`` ago), jump: the timeline audio up to just after the
        playhead is claimed unheard, and a ``Rewindable`` stream restarts there. Skipping only the
        rendering cannot help then — every frame the stream could produce is already past its
        tick, so the face would stay frozen for as long as the overload lasts. The jump costs the
        lip model its context for a moment (an utterance restarts), never the picture."""
        stream = self._stream
        if not isinstance(stream, Rewindable):
            return
        next_frame = self._schedule.consumed // SAMPLES_PER_FRAME - self.lookahead
        playhead = self._playhead()
        if next_frame >= playhead - FAST_FORWARD_FRAMES:
            return
        restart = playhead + 2  # 80 ms to hear the lookahead and draw the first frame again
        while self._schedule.consumed < restart * SAMPLES_PER_FRAME:
            self._schedule.claim(restart * SAMPLES_PER_FRAME - self._schedule.consumed)
        stream.rewind(restart)
        self.frames_fast_forwarded += restart - max(next_frame, 0)

    def _done(self) -> None:
        with self._lock:
            self._busy = False
            self._idle.set()

    def _push(self, pcm, context):  # type: ignore[no-untyped-def]
        if not self._skips:
            return self._stream.push_audio(pcm, context)
        assert isinstance(self._stream, SkipsFrames)
        self.late_filter.begin()
        try:
            return self._stream.push_audio_skipping(pcm, self.late_filter, context)
        finally:
            self.late_filter.end()

    def _deadline(self, index: int) -> float:
        return self._deadlines().of(index)

    def _accept(self, frame: VideoFrame) -> None:
        """A rendered frame: its lateness is recorded and it joins the clock's queue."""
        if self._counts_lateness(frame.index):
            self._lateness.add(self._clock.now() - self._deadline(frame.index))
        self._frames.put(frame)
        self.frames_rendered += 1

    def _push_remote(self, want: int) -> None:
        """All the audio due in one request; each frame joins the queue the moment it arrives."""
        stream = self._stream
        assert isinstance(stream, StreamsLateFrames)
        claim = self._schedule.claim(want)
        # the policy's state goes to the worker with the request and comes back updated: the
        # only place skip state crosses the process boundary (the filter is its in-process home)
        self.late_filter.policy = stream.push_audio_deadlined(
            claim.pcm, self._deadlines(), self.late_filter.policy, self._accept
        )

    def _pump(self) -> None:
        """One job: push audio up to the target as it stood when the job began, then hand the
        worker back. Past capacity the playhead moves on while the job renders; chasing it in the
        same job would keep one session on a worker forever and starve the others (the
        earliest-deadline order only acts between jobs), so the next round is a new job."""
        target = self.target()
        try:
            self._fast_forward()
            while not self._stop.is_set() and not self._paused:
                want = target - self._schedule.consumed
                if want <= 0:
                    break
                if self._remote_skips:
                    self._push_remote(want)
                    continue
                # one frame of audio per push: each frame reaches the queue as soon as it is
                # rendered, not when a whole batch is (a batch's first frames would miss their ticks)
                claim = self._schedule.claim(min(want, SAMPLES_PER_FRAME))
                for f in self._push(claim.pcm, claim.context):
                    self._accept(f)
        except Exception as e:
            log.exception("session %s: engine push failed", self._name)
            self._on_error(f"engine failed: {e}")
            self._done()
            return
        self._done()
        self.maybe_pump()  # fell behind while rendering: the next round, in deadline order
