"""LL-HLS output of one session: ffmpeg writes CMAF to a pipe, parts are published as they complete.

Same tick contract and failure policy as ``HlsSink`` (one frame + 1/fps s audio per ``write``,
bounded queue, typed errors), but nothing touches the disk: the ``LlHlsTimeline`` holds the init
segment and the recent parts/segments in memory (bounded by its window + retention) for the
HTTP layer to serve. Recording stays the job of the TS ``HlsSink``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hls.args import EncodeSettings, fmp4_command
from hls.errors import SinkError
from hls.feeder import FfmpegFeeder
from hls.llhls.fragments import Fmp4Splitter, InitSegment
from hls.llhls.playlist import render_timeline
from hls.llhls.timeline import LlHlsTimeline
from hls.ticks import TickValidator
from models.types import FPS, AudioSlice, VideoFrame


class LlHlsSink:
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
    ) -> None:
        frames_per_part = fps * part_seconds
        gop = round(fps * segment_seconds)
        whole = round(frames_per_part) >= 1 and abs(frames_per_part - round(frames_per_part)) < 1e-6
        if not whole or gop % round(frames_per_part) or abs(gop - fps * segment_seconds) > 1e-6:
            raise ValueError(
                "part and segment lengths must be whole frames, the segment a whole number of parts"
            )
        settings = EncodeSettings(width, height, fps, sample_rate, preset=preset, gop_frames=gop)
        self.timeline = LlHlsTimeline(
            anchor or datetime.now(UTC), part_seconds, segment_seconds, window_segments
        )
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
                self.timeline.set_init(item)
            else:
                self.timeline.add_fragment(item)

    def start(self) -> LlHlsSink:
        self._feeder.start()
        return self

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None:
        self._feeder.write(frame, audio, timeout)

    def end(self, timeout: float = 10.0) -> None:
        """Flush the last part, mark the timeline ended (ENDLIST) and stop. Raises SinkFailedError."""
        try:
            self._feeder.finish(timeout)
            self.timeline.end()
        finally:
            self._feeder.close()

    def close(self) -> None:
        self._feeder.close()

    def playlist(self) -> str:
        return render_timeline(self.timeline)

    @property
    def alive(self) -> bool:
        return self._feeder.alive

    @property
    def error(self) -> SinkError | None:
        return self._feeder.error

    @property
    def pid(self) -> int | None:
        return self._feeder.pid

    def __enter__(self) -> LlHlsSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
