"""LL-HLS output of one session: ffmpeg writes CMAF to a pipe, parts are published as they complete.

Same tick contract and failure policy as ``HlsSink`` (one frame + 1/fps s audio per ``write``,
bounded queue, typed errors). The ``LlHlsTimeline`` holds the init segment and the recent
parts/segments in memory (bounded by its window + retention) for the HTTP layer to serve. With
``out_dir`` every finished segment is also written there (``SegmentArchive``), and
``segment_paths`` (init first) is the session recording's input, as with the TS ``HlsSink``.

Encoder restarts (the owner's policy, ``server.sinks.hls.RestartingSink``): a sink built with
``resume=True`` on the previous sink's ``timeline`` and ``archive`` continues the same stream. The
timeline closes the open segment and puts the new encoder's first segment behind an
``EXT-X-DISCONTINUITY``; the new ffmpeg's fragments (its clock restarts at 0) are moved to the
timeline's end (``shift_fragment``), so media time stays monotonic for players and the archive
still concatenates into one fragmented MP4. ``abandon()`` ends the stream (ENDLIST) when the
encoder cannot: players stop polling a dead session instead of waiting forever.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

from hls.feeder import FeederStatus, FfmpegFeeder
from hls.ffmpeg import EncodeSettings, fmp4_command
from hls.llhls.archive import SegmentArchive
from hls.llhls.fragments import Fmp4Splitter, Fragment, InitSegment, shift_fragment
from hls.llhls.playlist import render_timeline
from hls.llhls.timeline import LlHlsTimeline
from hls.ticks import TickValidator
from models.types import FPS, AudioSlice, VideoFrame


class LlHlsSink(FeederStatus):
    def __init__(
        self,
        name: str,
        width: int,
        height: int,
        fps: int = FPS,
        sample_rate: int = 48_000,
        part_seconds: float = 0.2,
        segment_seconds: float = 1.0,
        window_segments: int = 6,
        queue_ticks: int = 50,
        write_timeout: float | None = 0.5,
        preset: str = "veryfast",
        anchor: datetime | None = None,
        out_dir: Path | None = None,
        keep_segments: int | None = None,
        timeline: LlHlsTimeline | None = None,
        archive: SegmentArchive | None = None,
        resume: bool = False,
    ) -> None:
        frames_per_part = fps * part_seconds
        gop = round(fps * segment_seconds)
        whole = round(frames_per_part) >= 1 and abs(frames_per_part - round(frames_per_part)) < 1e-6
        if not whole or gop % round(frames_per_part) or abs(gop - fps * segment_seconds) > 1e-6:
            raise ValueError(
                "part and segment lengths must be whole frames, the segment a whole number of parts"
            )
        settings = EncodeSettings(width, height, fps, sample_rate, preset=preset, gop_frames=gop)
        self.segment_seconds = segment_seconds
        self.timeline = timeline or LlHlsTimeline(
            anchor or datetime.now(UTC), part_seconds, segment_seconds, window_segments
        )
        if archive is None and out_dir is not None:
            archive = SegmentArchive(out_dir, keep_segments)
        self.archive = archive
        self.resumed = resume
        if resume:
            self.timeline.mark_discontinuity()
        self._start_at = self.timeline.end_time  # media seconds where this encoder's output goes
        self._sequence_shift = self.timeline.parts_published
        self._shifts: dict[int, int] = {}
        self._ended = False
        self._splitter = Fmp4Splitter()
        self._feeder = FfmpegFeeder(
            f"llhls[{name}]",
            lambda audio_fd: fmp4_command(settings, audio_fd, part_seconds),
            TickValidator(width, height, fps, sample_rate),
            queue_ticks=queue_ticks,
            write_timeout=write_timeout,
            on_stdout=self._consume,
        )

    def _consume(self, chunk: bytes) -> None:
        for item in self._splitter.feed(chunk):
            if isinstance(item, InitSegment):
                self._shifts = {
                    tid: round(self._start_at * t.timescale) for tid, t in item.tracks.items()
                }
                if self.archive is not None:
                    self.archive.set_init(item.data)
                self.timeline.set_init(item)
            else:
                part = self.timeline.add_fragment(self._moved(item))
                self._archive(part.msn - 1)  # a segment closes with the next one's first part
                self._archive(part.msn)

    def _moved(self, frag: Fragment) -> Fragment:
        return shift_fragment(frag, self._shifts, self._sequence_shift)

    def _archive(self, msn: int) -> None:
        if self.archive is not None and msn not in self.archive.segment_numbers[-1:]:
            data = self.timeline.completed_segment(msn)
            duration = self.timeline.segment_duration(msn)
            if data is not None and duration is not None:
                self.archive.add_segment(msn, data, duration, self.timeline.is_discontinuity(msn))

    def start(self) -> LlHlsSink:
        self._feeder.start()
        return self

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None:
        self._feeder.write(frame, audio, timeout)

    def end(self, timeout: float = 10.0) -> None:
        """Flush the last part, mark the timeline ended (ENDLIST) and stop. Raises SinkFailedError."""
        if self._ended:
            return
        try:
            self._feeder.finish(timeout)
            self.timeline.end()
            self._ended = True
            last = self.timeline.snapshot().segments
            if last:
                self._archive(last[-1].msn)
            if self.archive is not None:
                self.archive.write_playlist()
        finally:
            self._feeder.close()

    def close(self) -> None:
        self._feeder.close()

    def abandon(self) -> None:
        """The encoder is gone for good: end the published stream as it stands (ENDLIST in the live
        playlist, the archive closed as a replayable playlist) so players stop. Never raises."""
        self._feeder.close()
        if self._ended:
            return
        self._ended = True
        self.timeline.end()
        with contextlib.suppress(OSError):  # a full disk must not hide the ENDLIST from players
            last = self.timeline.snapshot().segments
            if last:
                self._archive(last[-1].msn)
            if self.archive is not None:
                self.archive.write_playlist()

    @property
    def parts_published(self) -> int:
        """Parts of the stream so far (across restarts): what stall detection watches."""
        return self.timeline.parts_published

    def playlist(self) -> str:
        return render_timeline(self.timeline)

    @property
    def segment_paths(self) -> list[Path]:
        """``[init.mp4, seg_<a>.m4s, …]`` of the finished segments still on disk, in order: one
        fragmented MP4 when concatenated (``remux_hls_to_mp4`` input). Empty without ``out_dir``."""
        return [] if self.archive is None else [p for p in self.archive.paths() if p.exists()]

    @property
    def published_count(self) -> int:
        """Segments published so far, the open one included once players can fetch a part."""
        return self.timeline.published_segments

    @property
    def ended(self) -> bool:
        return self._ended

    def __enter__(self) -> LlHlsSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
