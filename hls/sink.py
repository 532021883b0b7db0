"""The live HLS writer: one long-lived ffmpeg per session turning (frame, audio) ticks into TS segments.

The session's clock calls ``write`` once per tick (one frame + 1/fps s of audio). Segments are
cut on forced keyframes every ``segment_seconds``; the playlist keeps a bounded live window
while every segment file stays on disk for the session recording (unless
``delete_old_segments``). A watcher thread follows the playlist so that ``segments`` lists every
segment ever published, with the time it appeared, even after it left the live window.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hls.feeder import FeederStatus, FfmpegFeeder
from hls.ffmpeg import EncodeSettings, hls_command
from hls.playlist import Segment, append_endlist, read_segments
from hls.ticks import TickValidator
from models.types import FPS, AudioSlice, VideoFrame

SEGMENT_PATTERN = "seg_%05d.ts"
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class PublishedSegment:
    """A segment and the monotonic time its playlist first listed it (publish latency = that − its end)."""

    segment: Segment
    path: Path
    published_at: float


class HlsSink(FeederStatus):
    """Live HLS output of one session. Thread-safe ``write``; ``end``/``close`` from the owner.

    ``out_dir`` must exist and belong to this sink alone (the caller creates it from its own ids,
    never from client input). Writing blocks at most ``write_timeout`` s when the encoder is
    ``queue_ticks`` behind, then raises ``SinkStalledError`` with nothing queued. After ffmpeg
    dies every call raises ``SinkFailedError`` promptly; the owner decides to restart (a new
    sink on the same directory with ``resume=True`` continues the playlist after an
    ``EXT-X-DISCONTINUITY``) or to fail the session. From an asyncio event loop call
    ``write(..., timeout=0)``: it never waits (a copy of the frame, well under a millisecond) and
    raises ``SinkStalledError`` if the queue is full.
    """

    def __init__(
        self,
        out_dir: Path,
        width: int,
        height: int,
        fps: int = FPS,
        sample_rate: int = 48_000,
        segment_seconds: float = 1.0,
        list_size: int = 6,
        event_playlist: bool = False,
        delete_old_segments: bool = False,
        queue_ticks: int = 50,
        write_timeout: float | None = 0.5,
        preset: str = "veryfast",
        playlist_name: str = "playlist.m3u8",
        resume: bool = False,
    ) -> None:
        out_dir = Path(out_dir)
        if not out_dir.is_dir():
            raise FileNotFoundError(f"HLS output directory {out_dir} does not exist")
        gop = round(fps * segment_seconds)
        if gop < 1 or abs(gop - fps * segment_seconds) > 1e-6:
            raise ValueError(f"segment_seconds × fps must be a whole number of frames, got {segment_seconds}")
        if list_size < 1 and not event_playlist:
            raise ValueError("list_size must be >= 1 for a live playlist")
        self.out_dir = out_dir
        self.playlist_path = out_dir / playlist_name
        self.segment_seconds = segment_seconds
        self.event_playlist = event_playlist
        settings = EncodeSettings(width, height, fps, sample_rate, preset=preset, gop_frames=gop)

        def command(audio_fd: int) -> list[str]:
            return hls_command(
                settings, audio_fd, self.playlist_path, out_dir / SEGMENT_PATTERN,
                segment_seconds, list_size, event_playlist, delete_old_segments, resume,
            )  # fmt: skip

        self._feeder = FfmpegFeeder(
            f"hls[{out_dir.name}]", command, TickValidator(width, height, fps, sample_rate),
            queue_ticks=queue_ticks, write_timeout=write_timeout,
        )  # fmt: skip
        self._published: dict[int, PublishedSegment] = {}
        self._seen_cond = threading.Condition()
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._ended = False
        self._playlist_stamp: tuple[int, int] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> HlsSink:
        self._feeder.start()
        name = f"{self._feeder.name}-playlist"
        self._watcher = threading.Thread(target=self._watch, name=name, daemon=True)
        self._watcher.start()
        return self

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None:
        """Queue one tick (see the class docstring for the blocking policy)."""
        self._feeder.write(frame, audio, timeout)

    def end(self, timeout: float = 10.0) -> list[PublishedSegment]:
        """Finish cleanly: encode what is queued, let ffmpeg flush the last segment, then close the
        playlist with ``#EXT-X-ENDLIST``. Returns every published segment. Idempotent."""
        if not self._ended:
            try:
                self._feeder.finish(timeout)
                self._stop_watcher()
                self._refresh()
                if self.playlist_path.exists():
                    append_endlist(self.playlist_path)
                self._ended = True
            finally:
                self.close()
        return self.segments_published

    def close(self) -> None:
        """Abort: kill ffmpeg, join threads, release pipes. Idempotent; the playlist stays open-ended."""
        self._feeder.close()
        self._stop_watcher()

    def __enter__(self) -> HlsSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def segments(self) -> list[Segment]:
        """Every segment published so far (also those that left the live window), in order."""
        return [p.segment for p in self.segments_published]

    @property
    def segments_published(self) -> list[PublishedSegment]:
        self._refresh()
        with self._seen_cond:
            return [self._published[k] for k in sorted(self._published)]

    @property
    def segment_paths(self) -> list[Path]:
        """Files of every published segment still on disk, in order (the recording's input)."""
        return [p.path for p in self.segments_published if p.path.exists()]

    @property
    def published_count(self) -> int:
        return len(self.segments_published)

    def wait_for_segments(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until ``count`` segments are published (True) or timeout/failure (False)."""
        deadline = time.monotonic() + timeout
        with self._seen_cond:
            while len(self._published) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._feeder.error is not None or self._watch_stop.is_set():
                    return False
                self._seen_cond.wait(min(remaining, _POLL_S * 2))
            return True

    # -- playlist watcher ------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._watch_stop.wait(_POLL_S):
            self._refresh()

    def _stop_watcher(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(2.0)
        with self._seen_cond:
            self._seen_cond.notify_all()

    def _refresh(self) -> None:
        """Merge the playlist's current segments into the published log (cheap when unchanged)."""
        # OSError, not just FileNotFoundError: a removed or replaced session directory
        # (NotADirectoryError, PermissionError) must not kill the watcher thread.
        with contextlib.suppress(OSError):
            st = self.playlist_path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            with self._seen_cond:
                if stamp == self._playlist_stamp:
                    return
            now = time.monotonic()
            listed = read_segments(self.playlist_path)
            with self._seen_cond:
                self._playlist_stamp = stamp
                for seg in listed:
                    if seg.sequence not in self._published:
                        self._published[seg.sequence] = PublishedSegment(seg, self.out_dir / seg.uri, now)
                self._fill_gaps(now)
                self._seen_cond.notify_all()

    def _fill_gaps(self, now: float) -> None:
        """Log segments that entered and left the live window between two polls (or before the first).

        Fed faster than real time with a short window, ffmpeg can publish and retire a segment
        before the watcher sees the playlist. The file names are sequential, so a missing
        sequence number whose file exists is recovered from disk (nominal duration: its EXTINF
        was never seen). Caller holds ``_seen_cond``.
        """
        if not self._published:
            return
        known = sorted(self._published)
        ref = self._published[known[-1]].segment
        digits = "".join(ch for ch in ref.uri if ch.isdigit())
        if not digits:
            return
        offset = int(digits) - ref.sequence

        def recover(seq: int) -> bool:
            path = self.out_dir / (SEGMENT_PATTERN % (seq + offset))
            if seq + offset < 0 or not path.exists():
                return False
            seg = Segment(sequence=seq, uri=path.name, duration=self.segment_seconds)
            self._published[seq] = PublishedSegment(seg, path, now)
            return True

        for seq in range(known[0] + 1, known[-1]):  # holes between listed segments
            if seq not in self._published:
                recover(seq)
        seq = known[0] - 1  # segments that left the window before the first poll
        while seq >= 0 and recover(seq):
            seq -= 1


ProgressiveHLSGenerator = HlsSink
"""The name used in the published design."""
