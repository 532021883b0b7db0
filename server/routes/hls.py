"""Serving a session's live HLS files. Only two file-name shapes exist; anything else is 404.

Playlists are ``no-cache`` (they change every segment); segments are immutable once listed. CORS
is open for GET without credentials (set on the app), so any page can play the stream.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from server.errors import SessionNotFoundError
from server.ids import hls_content_type, is_valid_hls_file
from server.registry import SessionRegistry

router = APIRouter()


@router.get("/hls/{session_id}/{file_name}")
async def hls_file(request: Request, session_id: str, file_name: str) -> FileResponse:
    registry: SessionRegistry = request.app.state.registry
    session = registry.get(session_id)
    if not is_valid_hls_file(file_name):
        raise SessionNotFoundError(f"no such HLS file: {file_name[:64]!r}")
    path = session.directory / file_name  # both parts validated against strict patterns
    if not path.is_file():
        raise SessionNotFoundError(f"{file_name} is not available (yet)")
    session.touch()
    if file_name.endswith(".m3u8"):
        headers = {"Cache-Control": "no-cache, no-store"}
    else:
        headers = {"Cache-Control": "public, max-age=3600, immutable"}
    return FileResponse(path, media_type=hls_content_type(file_name), headers=headers)
