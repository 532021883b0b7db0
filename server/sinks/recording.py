"""Session recordings: the whole session so far as one MP4, remuxed from its HLS segments.

Retention policy (settings ``recording_max_seconds``, default 1800 s):
* The live playlist lists only the live window (``live_window_segments``), but the segment files
  stay on disk after leaving it: the HLS writer no longer deletes them.
* ``SegmentRetention`` (a tick subscriber of the session) deletes the oldest segment files beyond
  ``recording_max_seconds`` (never one still in the live window), so a long session's disk use stays
  bounded; its recording then starts that far back.
* ``recording_max_seconds = 0`` turns recording off: the writer deletes segments as they leave the
  live window (the recording is then just the live window). ``keep_all_segments`` keeps everything.
* Progressive sessions keep all their segments (bounded by ``max_batch_audio_seconds``).
Files go when the session is deleted or expires; the recording route works until then.

Which files: the directory's ``seg_<n>.ts`` files in numeric order (TS mode); otherwise the session's
sink is asked for its ordered ``segment_paths`` (an LL-HLS sink's ``[init.mp4, seg_<n>.m4s, …]``,
kept per ``recording_max_seconds`` by server.sinks.llhls). ``remux_hls_to_mp4`` joins them
without re-encoding.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from hls.base import TickSink
from hls.mp4 import remux_hls_to_mp4
from models.types import FPS, AudioSlice, VideoFrame
from server.errors import RecordingUnavailableError

_TS_SEGMENT = re.compile(r"seg_([0-9]{5,9})\.ts")


def ts_segments_on_disk(directory: Path) -> list[Path]:
    """``seg_<n>.ts`` files of a session directory in numeric order (ffmpeg renames each into place
    complete, so every listed file is a whole segment)."""
    found = []
    for p in directory.iterdir() if directory.is_dir() else ():
        m = _TS_SEGMENT.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def recording_parts(directory: Path, sink: TickSink) -> list[Path]:
    """Ordered files that make up a session's recording (see the module docstring).

    TS files on disk win over the sink's own list: a restarted TS writer (server.sinks.hls) only knows
    the segments its playlist window still lists, while the files are all there.
    """
    on_disk = ts_segments_on_disk(directory)
    if on_disk:
        return on_disk
    return [p for p in sink.segment_paths if p.exists()]


def write_recording(directory: Path, sink: TickSink, out_path: Path) -> Path:
    """Remux what a session has published so far into ``out_path`` (blocking: ffmpeg stream copy)."""
    parts = recording_parts(directory, sink)
    if not [p for p in parts if p.suffix != ".mp4"]:
        raise RecordingUnavailableError("no segment has been published yet; try again in a second")
    return remux_hls_to_mp4(parts, out_path)


class SegmentRetention:
    """Tick subscriber that deletes a live session's oldest segment files beyond ``keep_segments``.

    ``publish`` runs on the session clock and must not block: once per segment it hands the
    deletion to ``executor``. Segment numbers are derived from the tick count (the writer cuts a
    segment every ``segment_frames`` ticks, numbered from ``first_number``), so no directory listing
    is needed; ``keep_segments`` includes a margin beyond the live window for the encoder's lag.
    """

    def __init__(
        self,
        directory: Path,
        keep_segments: int,
        segment_frames: int,
        executor: Executor,
        first_number: int = 1,
        unlink: Callable[[Path], None] = lambda p: p.unlink(missing_ok=True),
    ) -> None:
        self.directory = directory
        self.keep_segments = max(1, keep_segments)
        self.segment_frames = max(1, segment_frames)
        self._executor = executor
        self._unlink = unlink
        self._next_delete = first_number
        self._first = first_number
        self._closed = False

    @classmethod
    def for_settings(cls, directory: Path, settings: Any, executor: Executor) -> SegmentRetention | None:
        """The policy above for a live session (None: nothing to prune)."""
        if settings.keep_all_segments or settings.recording_max_seconds <= 0:
            return None
        keep = math.ceil(settings.recording_max_seconds / settings.segment_seconds)
        keep = max(keep, settings.live_window_segments + 3)
        return cls(directory, keep, round(settings.segment_seconds * FPS), executor)

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        if self._closed or (frame.index + 1) % self.segment_frames:
            return
        newest_complete = self._first + (frame.index + 1) // self.segment_frames - 1
        upto = newest_complete - self.keep_segments  # delete numbers < upto + 1
        if upto >= self._next_delete:
            first, self._next_delete = self._next_delete, upto + 1
            self._executor.submit(self._delete, first, upto)

    def _delete(self, first: int, last: int) -> None:
        for n in range(first, last + 1):
            self._unlink(self.directory / f"seg_{n:05d}.ts")

    def close(self) -> None:
        self._closed = True
