"""Reading ffmpeg's media playlists and closing them. Pure text handling plus one atomic file write."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ENDLIST = "#EXT-X-ENDLIST"


@dataclass(frozen=True, slots=True)
class Segment:
    """One finished media segment as a playlist lists it."""

    sequence: int  # media sequence number
    uri: str  # as written in the playlist (a bare file name for our sinks)
    duration: float  # seconds, from #EXTINF
    program_date_time: datetime | None = None


def parse_media_playlist(text: str) -> list[Segment]:
    """Segments of an HLS media playlist, in order. Unknown tags are ignored."""
    segments: list[Segment] = []
    sequence = 0
    duration: float | None = None
    pdt: datetime | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.fromisoformat(line.split(":", 1)[1])
        elif not line.startswith("#") and duration is not None:
            segments.append(Segment(sequence, line, duration, pdt))
            sequence += 1
            duration, pdt = None, None
    return segments


def read_segments(playlist: Path) -> list[Segment]:
    """Segments currently listed in ``playlist``; empty while it does not exist yet."""
    try:
        return parse_media_playlist(playlist.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []


def has_endlist(text: str) -> bool:
    return any(line.strip() == ENDLIST for line in text.splitlines())


def append_endlist(playlist: Path) -> None:
    """Mark ``playlist`` finished, atomically (readers see the old or the new file, never half).

    ffmpeg runs with ``omit_endlist`` so that a crashed encoder never looks like a finished stream;
    only a clean end closes the playlist, after ffmpeg has exited.
    """
    text = playlist.read_text(encoding="utf-8")
    if has_endlist(text):
        return
    if not text.endswith("\n"):
        text += "\n"
    # a stream shorter than half a segment gets TARGETDURATION:0 from ffmpeg, which players reject
    text = text.replace("#EXT-X-TARGETDURATION:0\n", "#EXT-X-TARGETDURATION:1\n")
    tmp = playlist.with_name(playlist.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + ENDLIST + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, playlist)
