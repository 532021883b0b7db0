"""How far a session's HLS output has got, for the status JSON (``playlist_ready``, ``segments``).

The page polls status to know when to attach its player; ``segments`` counts every segment the
sink has published (also those that left the live window). Asked of the sink (HlsSink and the
RestartingSink around it keep that log; an LL-HLS sink exposes its timeline), else counted from
the segment files on disk.
"""

from __future__ import annotations

import asyncio
from typing import Any

from server.sinks.recording import ts_segments_on_disk


def published_segments(session: Any) -> int:
    """Blocking (may stat/read the playlist): call off the event loop."""
    sink = getattr(session, "sink", None)
    segments = getattr(sink, "segments", None) if sink is not None else None
    if isinstance(segments, list):
        return len(segments)
    timeline = getattr(sink, "timeline", None)
    snapshot = getattr(timeline, "snapshot", None)
    if callable(snapshot):
        return len(getattr(snapshot(), "segments", ()))
    return len(ts_segments_on_disk(session.directory))


async def playlist_progress(session: Any) -> dict[str, Any]:
    try:
        count = await asyncio.to_thread(published_segments, session)
    except Exception:  # a sink torn down mid-call: report what the disk says
        count = await asyncio.to_thread(lambda: len(ts_segments_on_disk(session.directory)))
    return {"playlist_ready": count > 0, "segments": count}
