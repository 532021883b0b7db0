"""The session's LL-HLS output (``hls_mode="ll"``): one encoder at a time, restarted like the TS one.

``create_llhls_sink`` builds what outlives any one ffmpeg: the ``LlHlsTimeline`` (parts and
segments players see), the ``SegmentArchive`` (the recording's input: ``init.mp4`` then
``seg_<n>.m4s``) and the event-loop bridge (``LlHlsLive``) the routes in ``server.api.llhls`` wait
on. Each encoder is a ``SessionLlHlsSink`` on that shared state; ``RestartingSink`` replaces a dead
or stalled one behind an ``EXT-X-DISCONTINUITY`` (capped by ``max_sink_restarts``) and, when it
gives up, ends the timeline so the playlist carries ``#EXT-X-ENDLIST`` — the same policy as TS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hls.llhls.archive import SegmentArchive
from hls.llhls.sink import LlHlsSink
from hls.llhls.timeline import LlHlsTimeline
from server.settings import Settings
from server.sinks.hls import RestartingSink
from server.sinks.llhls_live import LlHlsLive


class SessionLlHlsSink(LlHlsSink):
    """One encoder of a session's LL stream, carrying the loop-side bridge the routes wait on
    (``llhls_live``, shared by every encoder of the session and closed with the session)."""

    def __init__(self, *args: object, llhls_live: LlHlsLive, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.llhls_live = llhls_live


class LlHlsRestartingSink(RestartingSink):
    """``RestartingSink`` over ``SessionLlHlsSink``s that also releases their shared bridge."""

    def __init__(self, *args: object, llhls_live: LlHlsLive, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.llhls_live = llhls_live

    def close(self) -> None:
        super().close()
        self.llhls_live.close()


def create_llhls_sink(
    settings: Settings,
    directory: Path,
    width: int,
    height: int,
    on_restart: Callable[[int, str], None] | None = None,
    label: str = "",
) -> LlHlsRestartingSink:
    """The LL output for one session directory (created by the assembly from a server id)."""
    s = settings
    timeline = LlHlsTimeline(
        datetime.now(UTC), s.llhls_part_seconds, s.segment_seconds, s.live_window_segments
    )
    archive = SegmentArchive(directory, None if s.keep_all_segments else _kept_segments(s))
    live = LlHlsLive(timeline)

    def encoder(resume: bool) -> SessionLlHlsSink:
        return SessionLlHlsSink(
            directory.name,
            width,
            height,
            sample_rate=s.output_sample_rate,
            part_seconds=s.llhls_part_seconds,
            segment_seconds=s.segment_seconds,
            window_segments=s.live_window_segments,
            preset=s.hls_preset,
            timeline=timeline,
            archive=archive,
            resume=resume,
            llhls_live=live,
        )

    return LlHlsRestartingSink(
        encoder, s.max_sink_restarts, on_restart, label or f"session {directory.name}", llhls_live=live
    )


def _kept_segments(s: Settings) -> int:
    """Segments kept on disk: the live window without recordings (players are served from memory),
    else the window plus a margin, or the recording's length if longer."""
    if s.recording_max_seconds <= 0:
        return s.live_window_segments
    return max(s.live_window_segments + 4, math.ceil(s.recording_max_seconds / s.segment_seconds))
