"""The LL-HLS media playlist (RFC 8216bis, version 9), rendered from a timeline's state. Pure.

Parts are listed only for the open segment and the newest complete one (``PART_SEGMENTS``; that
covers more than PART-HOLD-BACK, and §4.4.4.9 lets older parts go), the open segment is listed by
its parts alone, and a preload hint names the next part so that players can request it before it
exists (the server holds that request until the part is ready).

Why not keep parts for three target durations (the most §4.4.4.9 allows): measured under load
(benchmarks/glass_to_glass_llhls.py, hls.js 1.7 in Chromium), when a segment completes while
hls.js is still loading one of its parts, hls.js may mark that segment loaded without its last
part and then refuses to load anything until that segment's parts leave the playlist: with
three target durations of parts that was a 2.5–3 s freeze with every part delivered on time.
Listing parts for one complete segment bounds it to under a segment, and closing a segment only
with the next one's first part (hls/llhls/timeline.py) makes it rarer.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from hls.llhls.timeline import INIT_URI, LlHlsTimeline, LlSegment, PlaylistState, part_uri

PART_SEGMENTS = 2
"""Segments whose parts are listed: the open one and the newest complete one (see above)."""


def _pdt(anchor: datetime, seconds: float) -> str:
    return (anchor + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def target_duration(segments: list[LlSegment], segment_target: float) -> int:
    """Integer target: every segment's duration, rounded to the nearest integer, must fit under it."""
    longest = max([segment_target, *(s.duration for s in segments if s.complete)])
    return max(1, math.floor(longest + 0.5))


def render_playlist(state: PlaylistState) -> str:
    """The playlist text for one consistent state (``LlHlsTimeline.snapshot()``)."""
    segments, anchor, part_target = state.segments, state.anchor, state.part_target
    segment_target, next_part, ended = state.segment_target, state.next_part, state.ended
    target = target_duration(segments, segment_target)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part_target:.3f}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn if segments else 1}",
    ]
    if state.discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{state.discontinuity_sequence}")
    if all(s.independent for s in segments if s.parts):  # a promise about every listed segment
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    lines.append(f'#EXT-X-MAP:URI="{INIT_URI}"')
    # the open segment (if any) and the newest complete one
    newest = PART_SEGMENTS if segments and not segments[-1].complete else PART_SEGMENTS - 1
    with_parts = {s.msn for s in segments[-newest:]}
    for i, seg in enumerate(segments):
        if seg.discontinuity:  # an encoder restart (before the segment's first part, RFC 8216bis §4.4.4.9)
            lines.append("#EXT-X-DISCONTINUITY")
        if (
            i == 0
            or seg.discontinuity
            or abs(segments[i - 1].start + segments[i - 1].duration - seg.start) > 1e-3
        ):
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(anchor, seg.start)}")
        if not ended and seg.msn in with_parts:
            for part in seg.parts:
                independent = ",INDEPENDENT=YES" if part.independent else ""
                lines.append(f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{part.uri}"{independent}')
        if seg.complete:
            lines += [f"#EXTINF:{seg.duration:.3f},", seg.uri]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    elif next_part is not None:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_uri(*next_part)}"')
    return "\n".join(lines) + "\n"


def render_timeline(timeline: LlHlsTimeline) -> str:
    """``render_playlist`` of the timeline's current state."""
    return render_playlist(timeline.snapshot())
