"""The interface every engine implements (the CPU engine, the IMTalker neural engine).

Why this shape: a session is a clock (docs/DESIGN.md). Its timeline carries audio at every
instant — speech where speech was scheduled, silence elsewhere — and the engine consumes that
audio *continuously* through one ``EngineStream`` per session. Idle animation is simply what an
engine renders for silence, so speech and idle frames share one state and never jump.

Streams are chunk-invariant: pushing the same timeline audio in any chunk sizes yields the same
frames (the server relies on this to make chunk boundaries invisible).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from models.engines.skipping import LatePolicy, TickDeadlines
from models.types import Avatar, EngineParams, VideoFrame


@runtime_checkable
class EngineStream(Protocol):
    """Per-session streaming state. Not thread-safe: one InferenceExecutor thread drives it."""

    @property
    def lookahead_frames(self) -> int:
        """Frames of audio beyond frame n that must be pushed before frame n is returned.

        The session schedules speech at least this far (plus processing margin) ahead of the
        playhead, so this is the engine's contribution to end-to-end latency.
        """
        ...

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        """Consume the next timeline audio (16 kHz mono float32) and return frames now final.

        Returned frames have consecutive indices continuing from the previous call, starting at
        0 for a new stream. ``context`` is the AudioChunkBuffer's overlap (audio that was already
        pushed); stateful engines may ignore it because their state already holds it.
        """
        ...

    def flush(self) -> list[VideoFrame]:
        """End of the timeline: return every remaining frame for the audio pushed so far."""
        ...

    def close(self) -> None:
        """Release resources (idempotent)."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A talking-head engine. Instances are shared by all sessions and must be thread-safe."""

    name: str

    def prepare(self, image: np.ndarray, params: EngineParams) -> Avatar:
        """Analyse one portrait (RGB uint8, any size) once per session.

        Raises models.errors.NoFaceFoundError / ImageTooSmallError / InvalidImageError.
        """
        ...

    def open_stream(self, avatar: Avatar, params: EngineParams) -> EngineStream:
        """Start a new timeline for ``avatar``; frame 0 corresponds to the first pushed sample."""
        ...


@runtime_checkable
class PreparesBytes(Protocol):
    """Optional engine ability: analyse the raw upload bytes itself (EXIF rotation, a pixel-limit
    guard read from the header, any format its decoder knows) instead of a decoded RGB array."""

    def prepare_bytes(self, data: bytes, params: EngineParams) -> Avatar: ...


@runtime_checkable
class Rewindable(Protocol):
    """Optional stream ability: forget the audio from timeline frame ``frame_index`` on, so the
    next push starts there (barge-in re-renders the cut as idle). Streams without it keep playing
    what they already rendered up to their horizon."""

    def rewind(self, frame_index: int) -> None: ...


@runtime_checkable
class SkipsFrames(Protocol):
    """Optional stream ability: advance through frames nobody will see without rendering them.

    Why: past capacity, a frame finished after its tick is never shown (the clock has repeated the
    previous picture), yet rendering it makes the next frames late too. ``skip(index)`` is asked
    once per frame, in order, just before that frame would be rendered; True = motion advances,
    no picture is made and the frame is left out of the result. The frames that are returned are
    identical to ``push_audio``'s (skipping never changes the motion state)."""

    def push_audio_skipping(
        self, pcm: np.ndarray, skip: Callable[[int], bool], context: np.ndarray | None = None
    ) -> list[VideoFrame]: ...


@runtime_checkable
class StreamsLateFrames(Protocol):
    """Optional stream ability of a stream made in another process: push audio, skip the frames
    that would miss their tick by ``policy`` evaluated where the frames are made (on the host's
    monotonic clock, against ``deadlines``), and hand each frame to ``emit`` as soon as it exists.

    Why: asking the server about every frame (``SkipsFrames``) is a round trip through its
    interpreter lock per frame, with the worker idle meanwhile. Returns the policy's new state
    (its estimate, skip run and count), which the caller keeps for the next push. The frames are
    the ones ``push_audio_skipping`` would return for the same decisions."""

    def push_audio_deadlined(
        self,
        pcm: np.ndarray,
        deadlines: TickDeadlines,
        policy: LatePolicy,
        emit: Callable[[VideoFrame], None],
    ) -> LatePolicy: ...


@runtime_checkable
class PinnedToWorker(Protocol):
    """Optional stream ability: the stream lives wholly in worker process ``worker_slot`` of its
    engine (0 ≤ slot < the engine's process count), which serves one request at a time. The
    server runs each slot's jobs on a lane of their own (``server.compute.executor``), so no
    thread waits on a busy worker while another worker has work queued and sits idle."""

    @property
    def worker_slot(self) -> int: ...


@runtime_checkable
class WorkerProcesses(Protocol):
    """Optional engine ability: part of its work runs in worker processes it owns (the CPU
    engine's audio→motion); ``close`` stops them. Their CPU counts as the engine's."""

    @property
    def worker_pids(self) -> list[int]: ...

    def close(self) -> None: ...


@runtime_checkable
class WarmsWorkers(Protocol):
    """Optional engine ability: run a little speech through every worker process it owns, so the
    first live sessions after a start do not pay for each worker's cold caches."""

    def warm_workers(self, avatar: Avatar, pcm: np.ndarray) -> None: ...
