"""Serving a session's live HLS files. Only two file-name shapes exist; anything else is 404.

Playlists are ``no-cache`` with an ETag for browsers, 1 s for a CDN (they change every segment);
segments are immutable once listed (server.api.http_cache). CORS
is open for GET without credentials (set on the app), so any page can play the stream.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from server.api import auth
from server.api.http_cache import IMMUTABLE_CACHE, PLAYLIST_CACHE, cached
from server.errors import SessionNotFoundError
from server.session.ids import hls_content_type, is_valid_hls_file
from server.session.registry import SessionRegistry
from server.session.state import SessionState

router = APIRouter()


@router.get("/hls/{session_id}/{file_name}", dependencies=[Depends(auth.watch)])
@router.get("/hls/{session_id}/{capability}/{file_name}", dependencies=[Depends(auth.watch)])
async def hls_file(request: Request, session_id: str, file_name: str) -> Response:
    registry: SessionRegistry = request.app.state.registry
    session = registry.get(session_id)
    if not is_valid_hls_file(file_name):
        raise SessionNotFoundError(f"no such HLS file: {file_name[:64]!r}")
    path = session.directory / file_name  # both parts validated against strict patterns
    media_type = hls_content_type(file_name)
    if file_name.endswith(".m3u8"):
        # ffmpeg replaces the playlist atomically while we serve it: read it whole, once, so the
        # length we announce is the length we send
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise SessionNotFoundError(f"{file_name} is not available yet") from None
        if session.state is SessionState.FAILED and b"#EXT-X-ENDLIST" not in body:
            # the writer died where it could not end its file (a full disk): players still must stop
            body = body.rstrip(b"\n") + b"\n#EXT-X-ENDLIST\n"
        return cached(request, body, media_type, PLAYLIST_CACHE)
    if not await asyncio.to_thread(path.is_file):
        raise SessionNotFoundError(f"{file_name} is not available (yet, or any more)")
    # segments are renamed into place complete (temp_file) and never change afterwards
    return FileResponse(path, media_type=media_type, headers=IMMUTABLE_CACHE)  # + Starlette's ETag
