"""The session's LL-HLS output (``hls_mode="ll"``): one ``LlHlsSink`` (the session's only encoder)
plus its event-loop bridge (``LlHlsLive``) for the routes in ``server.api.llhls``.

Built by the registry instead of the TS ``HlsSink``; the tick contract, ``end``/``close`` and
``segment_paths`` (the recording's input: ``init.mp4`` then ``seg_<n>.m4s``) are the same shape.
"""

from __future__ import annotations

import math
from pathlib import Path

from hls.llhls.sink import LlHlsSink
from server.settings import Settings
from server.sinks.llhls_live import LlHlsLive


class SessionLlHlsSink(LlHlsSink):
    """An ``LlHlsSink`` that carries the loop-side bridge the routes wait on (``llhls_live``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.llhls_live = LlHlsLive(self.timeline)

    def close(self) -> None:
        super().close()
        self.llhls_live.close()


def create_llhls_sink(settings: Settings, directory: Path, width: int, height: int) -> SessionLlHlsSink:
    """The LL sink for one session directory (created by the registry from a server id)."""
    s = settings
    return SessionLlHlsSink(
        directory.name,
        width,
        height,
        sample_rate=s.output_sample_rate,
        part_seconds=s.llhls_part_seconds,
        segment_seconds=s.segment_seconds,
        window_segments=s.live_window_segments,
        preset=s.hls_preset,
        out_dir=directory,
        keep_segments=None if s.keep_all_segments else _kept_segments(s),
    )


def _kept_segments(s: Settings) -> int:
    """Segments kept on disk: the live window plus a margin, or the recording's length if longer."""
    record_s = float(getattr(s, "recording_max_seconds", 0.0))  # set when recordings exist
    return max(s.live_window_segments + 4, math.ceil(record_s / s.segment_seconds))
