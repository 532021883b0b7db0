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

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from hls.base import find_sink
from hls.llhls.timeline import INIT_URI, Readiness
from server.api import auth
from server.api import hls as ts_routes
from server.api.http_cache import IMMUTABLE_CACHE, PLAYLIST_CACHE, etag_of
from server.errors import BadBlockingRequestError, BlockingReloadTimeoutError, SessionNotFoundError
from server.session.registry import SessionRegistry
from server.sinks.llhls import SessionLlHlsSink
from server.sinks.llhls_live import LlHlsLive

router = APIRouter()

PLAYLIST = "playlist.m3u8"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"
_PART = re.compile(r"part_([0-9]{1,9})_([0-9]{1,3})\.m4s")
_SEGMENT = re.compile(r"seg_[0-9]{1,9}\.m4s")
_NUMBER = re.compile(r"[0-9]{1,9}")
NO_CACHE = PLAYLIST_CACHE  # browsers revalidate (ETag), a CDN holds it 1 s (server.api.http_cache)
BLOCKING_CACHE = {"Cache-Control": "public, max-age=1"}
"""A blocking answer contains at least the requested part forever after: safe to share briefly."""
IMMUTABLE = IMMUTABLE_CACHE


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
        body = live.playlist()
        return Response(body, media_type=PLAYLIST_TYPE, headers={**NO_CACHE, "ETag": etag_of(body)})
    await _held(live, msn, part, timeout)
    body = live.playlist()
    return Response(body, media_type=PLAYLIST_TYPE, headers={**BLOCKING_CACHE, "ETag": etag_of(body)})


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
    return Response(data, media_type=MEDIA_TYPE, headers={**IMMUTABLE, "ETag": etag_of(data)})


@router.get("/hls/{session_id}/{file_name}", dependencies=[Depends(auth.watch)])
@router.get("/hls/{session_id}/{capability}/{file_name}", dependencies=[Depends(auth.watch)])
async def llhls_file(request: Request, session_id: str, file_name: str) -> Response:
    registry: SessionRegistry = request.app.state.registry
    session = registry.get(session_id)
    ll_sink = find_sink(session.sink, SessionLlHlsSink)
    if ll_sink is None:  # a TS session (or a progressive render): the plain route serves it
        return await ts_routes.hls_file(request, session_id, file_name)
    live = ll_sink.llhls_live
    timeout = registry.settings.llhls_block_timeout_s
    if file_name == PLAYLIST:
        return await serve_playlist(live, dict(request.query_params), timeout)
    return await serve_media(live, file_name, timeout)
