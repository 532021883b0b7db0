"""CPU engine streams in worker processes, so live sessions stop serialising on one GIL.

Why: profiling 4–8 live sessions (issue 14) put ~38 % of the interpreter-lock-held time in
pocketsphinx's decode (``PhoneRecognizer.push_block``), which never releases the GIL, and most of
the rest in render glue: a render is ~100 short numpy/OpenCV calls, each handing the lock back
and waiting for it again behind the clocks, encoder pipes and HTTP edges (the convoy effect), so
under load one 3 ms render took tens of ms of wall time and frames missed their ticks long before
the cores were busy. Here each session's whole ``CpuEngineStream`` (motion + render) lives in a
worker process; the server thread that drives it waits on a pipe (lock released) and gets the
finished frames back, one pickled array each (~0.8 MB at 512², a memcpy).

Same frames as in-process: the worker runs the very ``CpuEngineStream`` code on the same audio
with the avatar's own renderer (pickled once per stream), and a stream lives wholly in one worker,
so chunk invariance and determinism hold unchanged (tests/unit/models/test_stream_workers.py
compares pictures). Skipping late frames: a live session's producer hands the worker its
``LatePolicy`` and tick deadlines (``StreamsLateFrames``), the worker decides each frame on the
host's monotonic clock just before it would render it and sends every rendered frame back the
moment it exists, so the server's thread is needed once per frame, not twice (measured: the
per-frame question through the server's interpreter lock left workers idle under load). The
older ``SkipsFrames`` form, where the worker asks the caller about each frame, stays for callers
with a clock of their own.

Ownership: ``StreamWorkerPool`` starts ``processes`` workers (fresh interpreters, not forks: the
server has threads) and stops them in ``close``; each serves many streams, one request at a time
(per-worker lock). A worker that died fails the streams it held (their next call raises
``EngineWorkerError``; the session fails with it) and is replaced for new streams.
"""

from __future__ import annotations

import itertools
import mmap
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.engines.skipping import LatePolicy, TickDeadlines
from models.motion.stream import validate_pcm
from models.types import SAMPLES_PER_FRAME, EngineParams, MotionFrame, VideoFrame


class _RendersLazily(Protocol):
    """What ``_push_deadlined`` needs of the worker's stream (``CpuEngineStream.frames_skipping``)."""

    def frames_skipping(self, pcm: np.ndarray, skip: Callable[[int], bool]) -> Iterator[VideoFrame]: ...


class EngineWorkerError(RuntimeError):
    """The worker process failed or is gone (the session fails with this message)."""


@dataclass(frozen=True, slots=True)
class SlotRef:
    """A picture left in the worker's frame slots (``FrameSlots``) instead of pickled."""

    slot: int
    shape: tuple[int, ...]


WireFrame = tuple[int, bool, MotionFrame | None, np.ndarray | SlotRef | None]
"""A frame on the wire: (index, speech, motion, picture, or where it lies in the frame slots, or
None = the stream's previous picture)."""

FRAME_SLOTS = 16
"""Pictures one request may leave in shared memory; later ones in the same request are pickled."""
SLOT_BYTES = 512 * 512 * 3
"""One 512² RGB picture (the avatar size); a larger picture is pickled."""


class FrameSlots:
    """Shared memory (a memfd both processes map) through which a worker hands over the pictures
    of a live request: the worker copies each into the next slot and sends only a ``SlotRef``;
    the caller copies it out as it arrives. Why: pickling a 0.8 MB picture through the socket
    cost ~0.5 ms of CPU on each side per frame (measured: a 500-frame microbenchmark)
    — ~0.025 core per live session at 25 fps — against two plain copies here.

    Lifetime without acknowledgements: slots are numbered from 0 in every request, and the caller
    sends its next request only after it has read (and copied out) every reply of this one, so a
    slot is never rewritten while the caller may still read it."""

    def __init__(self, fd: int, slots: int = FRAME_SLOTS, slot_bytes: int = SLOT_BYTES) -> None:
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._map = mmap.mmap(fd, slots * slot_bytes)
        self._next = 0
        self.taken = 0
        """Pictures copied out so far on this side (they did not go through pickle)."""

    @staticmethod
    def create(slots: int = FRAME_SLOTS, slot_bytes: int = SLOT_BYTES) -> int | None:
        """A new memfd of the right size (the caller owns and closes it); None where there is none."""
        if not hasattr(os, "memfd_create"):
            return None
        try:
            fd = os.memfd_create("facestream-frames", getattr(os, "MFD_CLOEXEC", 0))
            os.ftruncate(fd, slots * slot_bytes)
        except OSError:
            return None
        return fd

    def begin(self) -> None:
        """A new request: its pictures start again at slot 0."""
        self._next = 0

    def put(self, image: np.ndarray) -> SlotRef | None:
        """Copy ``image`` into the next slot; None when it does not fit (pickle it instead)."""
        if self._next >= self.slots or image.nbytes > self.slot_bytes or image.dtype != np.uint8:
            return None
        slot, self._next = self._next, self._next + 1
        view = np.frombuffer(self._map, np.uint8, image.nbytes, slot * self.slot_bytes)
        view[:] = image.reshape(-1)
        return SlotRef(slot, image.shape)

    def take(self, ref: SlotRef) -> np.ndarray:
        """A copy of the picture ``ref`` names (the slot is free again for the next request)."""
        size = int(np.prod(ref.shape))
        if ref.slot >= self.slots or size > self.slot_bytes:
            raise EngineWorkerError(f"the worker named frame slot {ref.slot} of {ref.shape}: there is none")
        self.taken += 1
        return np.frombuffer(self._map, np.uint8, size, ref.slot * self.slot_bytes).reshape(ref.shape).copy()

    def close(self) -> None:
        self._map.close()


class _PictureSender:
    """Worker side of one stream: a picture identical (the same object) to the one sent last is
    sent as None. Why: at rest the CPU engine shows one picture for many frames
    (``StillPictures``), and 0.8 MB per frame pickled, copied through a socket and unpickled is
    most of what an idle frame would cost; the receiver also gets one object back, so the sink
    converts it to I420 once (``hls.ticks``)."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def pack(self, frame: VideoFrame, slots: FrameSlots | None = None) -> WireFrame:
        same = frame.image is self._last
        self._last = frame.image
        if same:
            return frame.index, frame.speech, frame.motion, None
        ref = slots.put(frame.image) if slots is not None else None
        return frame.index, frame.speech, frame.motion, frame.image if ref is None else ref


class _PictureReceiver:
    """Caller side of one stream: rebuilds the frames, sharing the previous picture object."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def unpack(self, wire: WireFrame, slots: FrameSlots | None = None) -> VideoFrame:
        index, speech, motion, image = wire
        if isinstance(image, SlotRef):
            if slots is None:
                raise EngineWorkerError("the worker sent a frame slot, but this side has no slots")
            image = slots.take(image)
        if image is None:
            if self._last is None:  # pragma: no cover - the sender never starts with None
                raise EngineWorkerError("the worker referred to a picture it never sent")
            image = self._last
        else:
            image.setflags(write=False)  # may be shared by later frames, as in-process
            self._last = image
        return VideoFrame(index, image, speech=speech, motion=motion)


def _serve(conn: multiprocessing.connection.Connection, slots: FrameSlots | None = None) -> None:
    """Worker loop: (op, stream id, *args) → (True, value) | (False, message); while a
    ``push_skipping`` runs it sends ("ask", index) and reads back the answer."""
    from models.engines.cpu import CpuEngineStream  # in the worker: the in-process stream

    streams: dict[int, CpuEngineStream] = {}
    senders: dict[int, _PictureSender] = {}

    def wire(sid: int, frames: list[VideoFrame]) -> list[WireFrame]:
        return [senders[sid].pack(f) for f in frames]

    def ask(index: int) -> bool:
        conn.send(("ask", index))
        return bool(conn.recv())

    while True:
        try:
            op, sid, *args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            value: Any = None
            if op == "open":
                renderer, params, lookahead = args
                streams[sid] = CpuEngineStream(renderer, params, lookahead)
                senders[sid] = _PictureSender()
            elif op == "push":
                value = wire(sid, streams[sid].push_audio(args[0]))
            elif op == "push_skipping":
                value = wire(sid, streams[sid].push_audio_skipping(args[0], ask))
            elif op == "push_deadlined":
                value = _push_deadlined(conn, streams[sid], senders[sid], *args, slots=slots)
            elif op == "flush":
                value = wire(sid, streams[sid].flush())
            elif op == "rewind":
                streams[sid].rewind(args[0])
            elif op == "close":
                senders.pop(sid, None)
                stream = streams.pop(sid, None)
                if stream is not None:
                    stream.close()
            else:
                raise ValueError(f"unknown request {op!r}")
            conn.send((True, value))
        except Exception as e:  # the caller re-raises it; the worker serves on
            conn.send((False, f"{type(e).__name__}: {e}"))


def _push_deadlined(
    conn: multiprocessing.connection.Connection,
    stream: _RendersLazily,
    sender: _PictureSender,
    pcm: np.ndarray,
    deadlines: TickDeadlines,
    policy: LatePolicy,
    *,
    slots: FrameSlots | None = None,
) -> LatePolicy:
    """Decide skips here, on this host's monotonic clock, and send each frame ("frame", frame)
    the moment it is rendered (its picture through ``slots`` when there are any); the reply that
    follows carries the policy's new state."""

    def skip(index: int) -> bool:
        return policy.decide(time.monotonic(), deadlines.of(index), index)

    if slots is not None:
        slots.begin()
    policy.begin()
    for frame in stream.frames_skipping(pcm, skip):
        conn.send(("frame", sender.pack(frame, slots)))
    policy.end(time.monotonic())
    return policy


def main(fd: int, slots_fd: int = -1) -> None:
    """Worker process entry: serve the connection on inherited socket ``fd`` until EOF, handing
    live pictures over through the memfd ``slots_fd`` (-1: none, pickle them)."""
    slots = FrameSlots(slots_fd) if slots_fd >= 0 else None
    _serve(multiprocessing.connection.Connection(fd), slots)


_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[2]); "
    "from models.engines.stream_workers import main; main(int(sys.argv[1]), int(sys.argv[3]))"
)


class _Worker:
    """One worker: a plain child process on a socketpair (not multiprocessing's spawn, which also
    starts a resource-tracker process that outlives a server stopped by SIGTERM). It exits on EOF,
    i.e. when the server closes the pool or dies."""

    def __init__(self, index: int) -> None:
        self.index = index
        ours, theirs = socket.socketpair()
        slots_fd = FrameSlots.create()
        try:
            with theirs:
                self.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _BOOT,
                        str(theirs.fileno()),
                        _ROOT,
                        str(-1 if slots_fd is None else slots_fd),
                    ],
                    pass_fds=[theirs.fileno()] + ([] if slots_fd is None else [slots_fd]),
                    stdin=subprocess.DEVNULL,
                )
            # this side's mapping outlives the fd (closed here: the worker holds its own copy)
            self.slots = FrameSlots(slots_fd) if slots_fd is not None else None
        finally:
            if slots_fd is not None:
                os.close(slots_fd)
        self.conn = multiprocessing.connection.Connection(ours.detach())
        self.name = f"engine-worker-{index} (pid {self.process.pid})"
        self.lock = threading.Lock()
        self.streams = 0

    def call(
        self,
        *request: object,
        skip: Callable[[int], bool] | None = None,
        emit: Callable[[WireFrame], None] | None = None,
    ) -> Any:
        """One request; while it runs the worker may ask ``skip`` about a frame ("ask") or hand
        over a finished frame ("frame", for ``emit``) before its final (ok, value) reply. If
        ``skip`` or ``emit`` raises, the rest of the request is still read off the connection
        (frames dropped, further questions answered "skip") before the error is re-raised, so
        the next request never reads this one's replies."""
        failure: BaseException | None = None
        with self.lock:
            try:
                self.conn.send(request)
                while True:
                    reply = self.conn.recv()
                    if reply[0] == "ask":
                        answer = True
                        if failure is None:
                            try:
                                answer = skip is not None and skip(reply[1])
                            except BaseException as e:
                                failure = e
                        self.conn.send(answer)
                        continue
                    if reply[0] == "frame":
                        if emit is not None and failure is None:
                            try:
                                emit(reply[1])
                            except BaseException as e:
                                failure = e
                        continue
                    ok, value = reply
                    break
            except (EOFError, OSError) as e:
                raise EngineWorkerError(f"{self.name} is gone ({e})") from e
        if failure is not None:
            raise failure
        if not ok:
            raise EngineWorkerError(value)
        return value

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.conn.close()  # EOF: the worker's loop returns
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.slots is not None:
            self.slots.close()


class StreamWorkerPool:
    """``processes`` workers; ``open`` puts a new stream on the one holding the fewest."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._workers = [_Worker(i) for i in range(processes)]
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Worker process ids (their CPU is the engine's: a calibration counts it)."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    def open(self, renderer: object, params: EngineParams, lookahead: int) -> RemoteCpuStream:
        with self._lock:
            if self._closed:
                raise EngineWorkerError("the engine worker pool is closed")
            for i, w in enumerate(self._workers):
                if not w.alive:
                    self._workers[i] = _Worker(i)
            worker = min(self._workers, key=lambda w: w.streams)
            worker.streams += 1
            sid = next(self._ids)
        try:
            worker.call("open", sid, renderer, params, lookahead)
        except BaseException:
            self._released(worker)
            raise
        return RemoteCpuStream(self, worker, sid, lookahead)

    def warm(self, renderer: object, params: EngineParams, lookahead: int, pcm: np.ndarray) -> None:
        """Run ``pcm`` through a throwaway stream on every worker, one after another. Why: a fresh
        worker pays for its first frames (allocator growth, the first pocketsphinx decoders,
        OpenCV's and numpy's first calls). Measured (benchmarks/server_capacity.py, 6 sessions):
        the first round after a start froze 6.6 % of the speech frames against 0.8-1.1 % in the
        rounds after it; with this warm-up 2.9 % against 0.75 % (single runs: the first round
        still pays for something else, not found yet)."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            with self._lock:
                sid = next(self._ids)
            worker.call("open", sid, renderer, params, lookahead)
            try:
                for a in range(0, len(pcm), 2 * SAMPLES_PER_FRAME):  # as a live producer pushes
                    worker.call("push", sid, validate_pcm(pcm[a : a + 2 * SAMPLES_PER_FRAME]))
                worker.call("flush", sid)
            finally:
                worker.call("close", sid)

    def _released(self, worker: _Worker) -> None:
        with self._lock:
            worker.streams -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for w in workers:
            w.stop()


class RemoteCpuStream:
    """A ``CpuEngineStream`` computed in a worker process (EngineStream, SkipsFrames, Rewindable,
    PinnedToWorker, StreamsLateFrames). Not thread-safe (one session's producer drives it)."""

    def __init__(self, pool: StreamWorkerPool, worker: _Worker, sid: int, lookahead: int) -> None:
        self._pool = pool
        self._worker = worker
        self._sid = sid
        self._lookahead = lookahead
        self._pictures = _PictureReceiver()
        self._closed = False

    @property
    def lookahead_frames(self) -> int:
        return self._lookahead

    @property
    def worker_slot(self) -> int:
        """The pool slot of the worker holding this stream (a replaced worker keeps the slot)."""
        return self._worker.index

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        """``context`` is ignored (the stream's state holds that audio), as in-process."""
        self._check_open()
        return self._frames(self._worker.call("push", self._sid, validate_pcm(pcm)))

    def push_audio_skipping(
        self, pcm: np.ndarray, skip: Callable[[int], bool], context: np.ndarray | None = None
    ) -> list[VideoFrame]:
        self._check_open()
        return self._frames(self._worker.call("push_skipping", self._sid, validate_pcm(pcm), skip=skip))

    def push_audio_deadlined(
        self,
        pcm: np.ndarray,
        deadlines: TickDeadlines,
        policy: LatePolicy,
        emit: Callable[[VideoFrame], None],
    ) -> LatePolicy:
        """The skip decisions run in the worker (``StreamsLateFrames``); frames reach ``emit`` one
        by one as the worker finishes them, on the calling thread."""
        self._check_open()
        pictures, slots = self._pictures, self._worker.slots
        updated: LatePolicy = self._worker.call(
            "push_deadlined", self._sid, validate_pcm(pcm), deadlines, policy,
            emit=lambda wire: emit(pictures.unpack(wire, slots)),
        )  # fmt: skip
        return updated

    def flush(self) -> list[VideoFrame]:
        self._check_open()
        return self._frames(self._worker.call("flush", self._sid))

    def _frames(self, wires: list[WireFrame]) -> list[VideoFrame]:
        return [self._pictures.unpack(w) for w in wires]

    def rewind(self, frame_index: int) -> None:
        self._check_open()
        self._worker.call("rewind", self._sid, frame_index)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.call("close", self._sid)
        except EngineWorkerError:
            pass  # a dead worker took the stream with it
        finally:
            self._pool._released(self._worker)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("CpuEngineStream is closed")
