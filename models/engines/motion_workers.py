"""Audio→motion in worker processes, so pocketsphinx stops serialising every session on one GIL.

Why: profiling 4–8 live sessions (issue 14) put ~38 % of the interpreter-lock-held time in
pocketsphinx's decode (``PhoneRecognizer.push_block``), which never releases the GIL, and most of
the rest in render glue. Rendering is mostly numpy/OpenCV calls that do release it; the motion
model does not. Moving each session's ``MotionStream`` into a worker process takes that share
off the server's lock: the server thread waits on a pipe (lock released) while the worker
decodes, and only small MotionFrames come back (a few hundred bytes; no pixels cross processes).

Same frames as in-process: the worker runs the very ``MotionStream`` code on the same audio, and
every stream lives wholly in one worker (its state never moves), so chunk invariance and
determinism hold unchanged (tests/unit/models/test_motion_workers.py checks equality).

Ownership: ``MotionWorkerPool`` starts ``processes`` workers (spawned, not forked: the server has
threads) and stops them in ``close``; each worker serves many streams, one request at a time
(per-worker lock). A worker that died fails the streams it held (their next call raises) and is
replaced for new streams.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import threading
from typing import Any

import numpy as np

from models.motion.stream import LOOKAHEAD_FRAMES, MotionStream, validate_pcm
from models.types import EngineParams, MotionFrame


class MotionWorkerError(RuntimeError):
    """The worker process failed or is gone (the session fails with this message)."""


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """Worker main loop: (op, stream id, *args) requests → (ok, value) replies, until EOF."""
    streams: dict[int, MotionStream] = {}
    while True:
        try:
            op, sid, *args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            value: Any = None
            if op == "open":
                params, start_index, lookahead = args
                streams[sid] = MotionStream(params, start_index=start_index, lookahead_frames=lookahead)
            elif op == "push":
                value = streams[sid].push_audio(args[0])
            elif op == "flush":
                value = streams[sid].flush()
            elif op == "close":
                stream = streams.pop(sid, None)
                if stream is not None:
                    stream.close()
            else:
                raise ValueError(f"unknown request {op!r}")
            conn.send((True, value))
        except Exception as e:  # the caller re-raises it; the worker serves on
            conn.send((False, f"{type(e).__name__}: {e}"))


class _Worker:
    def __init__(self, ctx: multiprocessing.context.SpawnContext, index: int) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), name=f"motion-worker-{index}", daemon=True)
        self.process.start()
        child.close()
        self.lock = threading.Lock()
        self.streams = 0

    def call(self, *request: object) -> Any:
        with self.lock:
            try:
                self.conn.send(request)
                ok, value = self.conn.recv()
            except (EOFError, OSError, BrokenPipeError) as e:
                raise MotionWorkerError(f"motion worker {self.process.name} is gone ({e})") from e
        if not ok:
            raise MotionWorkerError(value)
        return value

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        self.conn.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class MotionWorkerPool:
    """``processes`` workers; ``open`` puts a new stream on the one holding the fewest."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._workers = [_Worker(self._ctx, i) for i in range(processes)]
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Worker process ids (their CPU counts in a calibration)."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def open(
        self, params: EngineParams, start_index: int = 0, lookahead_frames: int = LOOKAHEAD_FRAMES
    ) -> RemoteMotionStream:
        with self._lock:
            if self._closed:
                raise MotionWorkerError("the motion worker pool is closed")
            for i, w in enumerate(self._workers):
                if not w.alive:
                    self._workers[i] = _Worker(self._ctx, i)
            worker = min(self._workers, key=lambda w: w.streams)
            worker.streams += 1
            sid = next(self._ids)
        try:
            worker.call("open", sid, params, start_index, lookahead_frames)
        except BaseException:
            with self._lock:
                worker.streams -= 1
            raise
        return RemoteMotionStream(self, worker, sid, lookahead_frames)

    def _released(self, worker: _Worker) -> None:
        with self._lock:
            worker.streams -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for w in workers:
            w.stop()


class RemoteMotionStream:
    """``MotionStream``'s interface, computed in a worker process. Not thread-safe (one session)."""

    def __init__(self, pool: MotionWorkerPool, worker: _Worker, sid: int, lookahead: int) -> None:
        self._pool = pool
        self._worker = worker
        self._sid = sid
        self._lookahead = lookahead
        self._closed = False

    @property
    def lookahead_frames(self) -> int:
        return self._lookahead

    def push_audio(self, pcm: np.ndarray) -> list[MotionFrame]:
        samples = validate_pcm(pcm)  # the same InvalidAudioError as in-process, raised here
        frames: list[MotionFrame] = self._worker.call("push", self._sid, samples)
        return frames

    def flush(self) -> list[MotionFrame]:
        frames: list[MotionFrame] = self._worker.call("flush", self._sid)
        return frames

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.call("close", self._sid)
        except MotionWorkerError:
            pass  # a dead worker took the stream with it
        finally:
            self._pool._released(self._worker)
