"""Serving LL-HLS (``hls_mode="ll"``) at the published ``/hls/<id>/…`` URLs, from memory.

* ``playlist.m3u8``: without query parameters at once (``no-cache``; 404 until the first part
  exists, as the TS playlist is 404 until its first segment). With ``_HLS_msn=N[&_HLS_part=M]``
  a blocking reload (RFC 8216bis §6.2.5.2): held on the event loop until the playlist contains that
  part (``LlHlsLive.wait``: no thread per waiter), 400 for an msn more than two segments ahead,
  503 after ``llhls_block_timeout_s``; the answer may be cached briefly (it only grows).
* ``init.mp4``, ``seg_<n>.m4s``, ``part_<n>_<i>.m4s``: strict patterns; immutable once served. A
  request for the part the playlist's ``EXT-X-PRELOAD-HINT`` names is held until that part is done.

Registered before ``server.api.hls`` when ``hls_mode == "ll"``; a session without an LL sink is
handed to that TS route unchanged.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hls.llhls.timeline import INIT_URI, Readiness
from server.api import hls as ts_routes
from server.errors import BadBlockingRequestError, BlockingReloadTimeoutError, SessionNotFoundError
from server.session.registry import SessionRegistry
from server.sinks.llhls_live import LlHlsLive

router = APIRouter()

PLAYLIST = "playlist.m3u8"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"
_PART = re.compile(r"part_([0-9]{1,9})_([0-9]{1,3})\.m4s")
_SEGMENT = re.compile(r"seg_[0-9]{1,9}\.m4s")
_NUMBER = re.compile(r"[0-9]{1,9}")
NO_CACHE = {"Cache-Control": "no-cache, no-store"}
BLOCKING_CACHE = {"Cache-Control": "public, max-age=1"}
"""A blocking answer contains at least the requested part forever after: safe to share briefly."""
IMMUTABLE = {"Cache-Control": "public, max-age=3600, immutable"}


def _number(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not _NUMBER.fullmatch(value):
        raise BadBlockingRequestError(f"{name} must be a non-negative integer")
    return int(value)


def blocking_query(query: dict[str, str]) -> tuple[int | None, int | None]:
    """(msn, part) of a playlist request; raises BadBlockingRequestError when malformed."""
    if "_HLS_skip" in query:
        raise BadBlockingRequestError("_HLS_skip is not supported (no CAN-SKIP-UNTIL advertised)")
    msn = _number("_HLS_msn", query.get("_HLS_msn"))
    part = _number("_HLS_part", query.get("_HLS_part"))
    if part is not None and msn is None:
        raise BadBlockingRequestError("_HLS_part requires _HLS_msn")
    return msn, part


async def _held(live: LlHlsLive, msn: int, part: int | None, timeout: float) -> None:
    """Wait until the timeline holds (msn, part); 400 if too far ahead, 503 on timeout."""
    state = live.timeline.readiness(msn, part)
    if state is Readiness.WAIT:
        state = await live.wait(msn, part, timeout)
    if state is Readiness.BAD_REQUEST:
        raise BadBlockingRequestError(f"segment {msn} is more than two segments beyond the live edge")
    if state is Readiness.WAIT:
        raise BlockingReloadTimeoutError(f"segment {msn} part {part} did not appear within {timeout:.1f} s")


async def serve_playlist(live: LlHlsLive, query: dict[str, str], timeout: float) -> Response:
    msn, part = blocking_query(query)
    if msn is None:
        if live.timeline.next_part == (1, 0):  # no part yet
            raise SessionNotFoundError(f"{PLAYLIST} is not available yet")
        return Response(live.playlist(), media_type=PLAYLIST_TYPE, headers=NO_CACHE)
    await _held(live, msn, part, timeout)
    return Response(live.playlist(), media_type=PLAYLIST_TYPE, headers=BLOCKING_CACHE)


async def serve_media(live: LlHlsLive, name: str, timeout: float) -> Response:
    timeline = live.timeline
    part = _PART.fullmatch(name)
    if not (name == INIT_URI or part or _SEGMENT.fullmatch(name)):
        raise SessionNotFoundError(f"no such HLS file: {name[:64]!r}")
    data = timeline.resource(name)
    if data is None and part is not None:
        wanted = (int(part.group(1)), int(part.group(2)))
        if wanted == timeline.next_part:  # the preload hint: answer when the part is complete
            await _held(live, *wanted, timeout)
            data = timeline.resource(name)
    if data is None:
        raise SessionNotFoundError(f"{name} is not available (yet, or any more)")
    return Response(data, media_type=MEDIA_TYPE, headers=IMMUTABLE)


@router.get("/hls/{session_id}/{file_name}")
async def llhls_file(request: Request, session_id: str, file_name: str) -> Response:
    registry: SessionRegistry = request.app.state.registry
    session = registry.get(session_id)
    live = getattr(session.sink, "llhls_live", None)
    if not isinstance(live, LlHlsLive):  # a TS session: the plain route serves it
        return await ts_routes.hls_file(request, session_id, file_name)
    session.touch()
    timeout = registry.settings.llhls_block_timeout_s
    if file_name == PLAYLIST:
        return await serve_playlist(live, dict(request.query_params), timeout)
    return await serve_media(live, file_name, timeout)
