"""One ffmpeg process fed by two pipes: I420 frames on stdin, s16le mono on an inherited fd.

Why two writer threads: ffmpeg reads its inputs independently, so a single writer alternating
between a 768 KiB frame and a 3.8 KiB audio slice can deadlock against ffmpeg's own buffering.
Each pipe gets its own thread; both are fed from one bounded tick queue, so video and audio
are always queued together (a tick is accepted whole or not at all).

Queue policy: at most ``queue_ticks`` ticks may be accepted but not yet written to *both* pipes.
``write`` waits up to its timeout for room, then raises ``SinkStalledError`` and queues nothing.
If ffmpeg exits or a pipe breaks, the feeder enters a failed state: every later ``write``
raises ``SinkFailedError`` at once, and nobody blocks on the dead process.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

from hls.errors import SinkClosedError, SinkError, SinkFailedError, SinkStalledError
from hls.ticks import TickValidator
from models.types import AudioSlice, VideoFrame

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_BYTES = 1 << 20  # fewer wakeups per frame; Linux's default unprivileged maximum


ENCODER_NICENESS = 4
"""Encoders run this much nicer than the server and the engine workers. Why: on a full box every
live frame has a hard deadline ~80 ms after its audio is due (the render margin) and crosses
several runnable queues on the way (lane thread, engine worker, the server taking the frame in),
while an encoder only has to keep pace on average: its input pipe and the tick queue absorb tens
of ms of lateness without any effect on the stream. Equal priorities let the CFS run queue delay
a render behind eight encoders; nice 4 (CFS weight 423 against 1024) lets the deadline work go
first and still leaves every encoder the CPU it needs whenever rendering is not waiting. Raising
niceness needs no privilege. Applied by exec'ing through ``nice`` (same pid, so signals and /proc
accounting still see ffmpeg itself); without a ``nice`` binary the encoder runs at the server's."""
_NICE = shutil.which("nice")


def _niced(command: list[str]) -> list[str]:
    return [_NICE, "-n", str(ENCODER_NICENESS), *command] if _NICE and ENCODER_NICENESS else command


def _widen_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FfmpegFeeder:
    """Owns one ffmpeg process, its pipes and its three threads (video, audio, stderr)."""

    def __init__(
        self,
        name: str,
        build_command: Callable[[int], list[str]],
        validator: TickValidator,
        queue_ticks: int = 50,
        write_timeout: float | None = 0.5,
        stderr_lines: int = 200,
        on_stdout: Callable[[bytes], None] | None = None,
    ) -> None:
        if queue_ticks < 1:
            raise ValueError("queue_ticks must be >= 1")
        self.name = name
        self._build_command = build_command
        self._validator = validator
        self._queue_ticks = queue_ticks
        self._write_timeout = write_timeout
        self._on_stdout = on_stdout
        self._stderr: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._cond = threading.Condition()
        self._video: collections.deque[bytes] = collections.deque()
        self._audio: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._done = {"video": 0, "audio": 0}
        self._ending = False
        self._closing = False
        self._error: SinkError | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self.command: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError(f"{self.name}: already started")
        video_r, video_w = os.pipe()
        audio_r, audio_w = os.pipe()
        try:
            for fd in (video_w, audio_w):
                _widen_pipe(fd)
            self.command = self._build_command(audio_r)
            if shutil.which(self.command[0]) is None:  # through ``nice`` exec would fail only later
                raise FileNotFoundError(errno.ENOENT, "no such executable", self.command[0])
            self._proc = subprocess.Popen(
                _niced(self.command),
                stdin=video_r,
                stdout=subprocess.DEVNULL if self._on_stdout is None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(audio_r,),
                start_new_session=True,  # a terminal's Ctrl-C goes to the server, which closes us
            )
        except BaseException as e:
            for fd in (video_r, video_w, audio_r, audio_w):
                os.close(fd)
            if isinstance(e, OSError):
                raise SinkFailedError(f"{self.name}: cannot start ffmpeg: {e}") from e
            raise
        os.close(video_r)  # the child holds its own copies
        os.close(audio_r)
        self._threads = [
            threading.Thread(target=self._pump, args=("video", video_w, self._video), daemon=True),
            threading.Thread(target=self._pump, args=("audio", audio_w, self._audio), daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        if self._on_stdout is not None:
            self._threads.append(threading.Thread(target=self._read_stdout, daemon=True))
        for t, role in zip(self._threads, ("video", "audio", "stderr", "stdout"), strict=False):
            t.name = f"{self.name}-{role}"
            t.start()

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None:
        """Queue one tick. ``timeout`` (default: the feeder's ``write_timeout``; None = wait forever)
        bounds the wait for queue room."""
        wait = self._write_timeout if timeout is None else timeout
        with self._cond:
            self._raise_if_unusable()
            video_bytes, audio_bytes = self._validator.check(frame, audio)
            deadline = None if wait is None else time.monotonic() + wait
            while self._in_flight() >= self._queue_ticks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    why = f"encoder {self._in_flight()} ticks behind; tick {frame.index} refused"
                    raise SinkStalledError(f"{self.name}: {why}")
                self._cond.wait(remaining)
                self._raise_if_unusable()
            self._video.append(video_bytes)
            self._audio.append(audio_bytes)
            self._queued += 1
            self._validator.commit(frame)
            self._cond.notify_all()

    def finish(self, timeout: float) -> int:
        """Write what is queued, close both pipes and wait for ffmpeg to exit cleanly.

        Raises SinkFailedError (after killing ffmpeg) if that takes longer than ``timeout``
        or ffmpeg exits non-zero.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._raise_if_unusable()
            self._ending = True
            self._cond.notify_all()
        assert self._proc is not None
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        try:
            rc = self._proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._fail(f"did not finish within {timeout:.1f} s")
            self.close()
            raise self._error or SinkFailedError(f"{self.name}: did not finish in time") from None
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            if self._error is not None:
                raise self._error
        if rc != 0:  # pragma: no cover - the stderr thread reports this first
            raise SinkFailedError(f"{self.name}: ffmpeg exited with {rc}")
        return rc

    def close(self) -> None:
        """Stop everything now (kill ffmpeg, join threads, reap). Idempotent, never raises."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(5.0)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)

    # -- state -----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._error is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def error(self) -> SinkError | None:
        return self._error

    @property
    def frames_written(self) -> int:
        """Ticks whose frame and audio have both been handed to ffmpeg."""
        with self._cond:
            return min(self._done.values())

    @property
    def queued_ticks(self) -> int:
        with self._cond:
            return self._in_flight()

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    # -- internals -------------------------------------------------------------------------
    def _in_flight(self) -> int:
        return self._queued - min(self._done.values())

    def _raise_if_unusable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._proc is None:
            raise SinkClosedError(f"{self.name}: not started")
        if self._closing or self._ending:
            raise SinkClosedError(f"{self.name}: already ended or closed")

    def _fail(self, why: str) -> None:
        with self._cond:
            if self._error is None and not self._closing:
                tail = " | ".join(list(self._stderr)[-10:])[-1500:]
                said = f"; ffmpeg said: {tail}" if tail else ""
                self._error = SinkFailedError(f"{self.name}: {why}{said}")
            self._cond.notify_all()

    def _pump(self, role: str, fd: int, queue: collections.deque[bytes]) -> None:
        try:
            while True:
                with self._cond:
                    while not queue and not (self._ending or self._closing or self._error):
                        self._cond.wait()
                    if self._closing or self._error or not queue:
                        return
                    data = queue.popleft()
                _write_all(fd, data)
                with self._cond:
                    self._done[role] += 1
                    self._cond.notify_all()
        except OSError as e:
            self._fail(f"{role} pipe broke ({e.strerror or e})")
        finally:
            os.close(fd)

    def _read_stdout(self) -> None:
        """Hand ffmpeg's output to the consumer as it arrives; a consumer error fails the feeder."""
        assert self._proc is not None and self._proc.stdout is not None and self._on_stdout is not None
        with self._proc.stdout as stream:
            try:
                # read1: whatever is there, up to 64 KiB (not a full 64 KiB): parts leave promptly
                while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
                    self._on_stdout(chunk)
            except Exception as e:  # the consumer's bug or bad bytes: stop this sink, not the server
                self._fail(f"output consumer failed: {e!r}")
                with contextlib.suppress(OSError):
                    self._proc.kill()

    def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with self._proc.stderr as stream:
            for raw in stream:
                self._stderr.append(raw.decode("utf-8", "replace").rstrip())
        rc = self._proc.wait()
        with self._cond:
            expected = self._closing or (self._ending and rc == 0)
        if not expected:
            self._fail(f"ffmpeg exited with code {rc}")


class FeederStatus:
    """Read-only process state that every ffmpeg-backed sink exposes the same way.

    Sinks keep their ``FfmpegFeeder`` in ``self._feeder``; this mixin is the one place that maps
    its state to the sink's public properties, so the HLS and LL-HLS sinks cannot drift apart.
    """

    _feeder: FfmpegFeeder

    @property
    def alive(self) -> bool:
        return self._feeder.alive

    @property
    def error(self) -> SinkError | None:
        return self._feeder.error

    @property
    def returncode(self) -> int | None:
        return self._feeder.returncode

    @property
    def frames_written(self) -> int:
        return self._feeder.frames_written

    @property
    def queued_ticks(self) -> int:
        return self._feeder.queued_ticks

    @property
    def stderr_tail(self) -> list[str]:
        return self._feeder.stderr_tail

    @property
    def pid(self) -> int | None:
        return self._feeder.pid
