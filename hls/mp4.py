"""Whole-file MP4 output: an encoder fed tick by tick, and a remux of a session's HLS segments.

``Mp4Writer`` serves offline rendering (the CLI, ``POST /api/audio-driven``): it uses the same
two-pipe feeder as the live sink but blocks when the encoder is behind (there is no clock to
keep), so a fast renderer is paced by the encoder instead of failing.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from hls.errors import SinkFailedError
from hls.feeder import FfmpegFeeder
from hls.ffmpeg import EncodeSettings, mp4_command, remux_command
from hls.ticks import TickValidator
from models.types import FPS, AudioSlice, VideoFrame


class Mp4Writer:
    """H.264 + AAC MP4 with the moov atom first. ``close()`` finishes the file; ``abort()`` discards it."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: int = FPS,
        sample_rate: int = 48_000,
        preset: str = "veryfast",
        queue_ticks: int = 25,
        finish_timeout: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self._finish_timeout = finish_timeout
        settings = EncodeSettings(width, height, fps, sample_rate, preset=preset, gop_frames=2 * fps)
        self._feeder = FfmpegFeeder(
            f"mp4[{self.path.name}]",
            lambda audio_fd: mp4_command(settings, audio_fd, self.path),
            TickValidator(width, height, fps, sample_rate),
            queue_ticks=queue_ticks,
            write_timeout=None,
        )
        self._feeder.start()
        self._closed = False

    def write(self, frame: VideoFrame, audio: AudioSlice) -> None:
        """Queue one tick; blocks while the encoder is ``queue_ticks`` behind."""
        self._feeder.write(frame, audio)

    @property
    def frames_written(self) -> int:
        return self._feeder.frames_written

    def close(self) -> Path:
        """Encode what is queued and finalise the file (idempotent). Raises SinkFailedError on failure,
        in which case the partial file is removed."""
        if not self._closed:
            self._closed = True
            try:
                self._feeder.finish(self._finish_timeout)
            except BaseException:
                self._discard()
                raise
            finally:
                self._feeder.close()
        return self.path

    def abort(self) -> None:
        """Stop now and remove the partial file (idempotent)."""
        self._closed = True
        self._discard()

    def _discard(self) -> None:
        self._feeder.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def remux_hls_to_mp4(segment_paths: list[Path], out_path: Path, timeout: float = 120.0) -> Path:
    """Join a session's TS segments (in order) into one MP4 without re-encoding (+faststart).

    LL-HLS sessions give ``[init.mp4, seg_<n>.m4s, …]`` (``LlHlsSink.segment_paths``): an init
    segment first means fragmented MP4 input. Writes to a temporary name next to ``out_path`` and
    renames, so a reader never sees half a file.
    """
    if not segment_paths:
        raise ValueError("no segments to remux")
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.part.mp4")
    input_format = "mp4" if Path(segment_paths[0]).suffix == ".mp4" else "mpegts"
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            remux_command(tmp, input_format),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
        assert proc.stdin is not None
        try:
            with proc.stdin as sink:
                for seg in segment_paths:
                    with open(seg, "rb") as f:
                        shutil.copyfileobj(f, sink, 1 << 20)
            rc: int | str = proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            proc.kill()
            proc.wait()
            rc = f"aborted ({e})"
        if rc != 0:
            errors.seek(0)
            tail = errors.read()[-2000:].decode("utf-8", "replace").strip()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise SinkFailedError(f"remux to {out_path.name} failed: {rc}; ffmpeg said: {tail}")
    tmp.replace(out_path)
    return out_path
