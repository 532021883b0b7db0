"""HTTP caching of HLS answers, right for browsers and for a CDN in front of many nodes.

* Playlists change every segment (or part): ``Cache-Control: no-cache`` makes every browser
  revalidate each reload (never a stale live edge), and the ``ETag`` makes an unchanged playlist
  a bodiless 304. A CDN follows the targeted ``CDN-Cache-Control`` (RFC 9213) / ``Surrogate-Control``
  instead and may serve one copy to every viewer for 1 s (one TS target duration): the origin
  answers about one playlist request per second per edge, whatever the audience. Why not
  ``no-store`` (the old value): nothing could be revalidated, every viewer's reload was a full
  origin request.
* Segments and parts never change once they exist (their URLs, under a unique session id, are never
  reused): ``public, max-age=3600, immutable`` and a strong ``ETag``.
"""

from __future__ import annotations

import hashlib

from fastapi import Request
from fastapi.responses import Response

PLAYLIST_CACHE = {
    "Cache-Control": "no-cache",
    "CDN-Cache-Control": "max-age=1",
    "Surrogate-Control": "max-age=1",
}
IMMUTABLE_CACHE = {"Cache-Control": "public, max-age=3600, immutable"}


def etag_of(body: bytes) -> str:
    """A strong validator of exactly these bytes (BLAKE2b, 96 bits: collisions are not a concern)."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: ``*`` or any listed tag equal to ours (weak comparison: ``W/`` ignored)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def cached(request: Request, body: bytes, media_type: str, headers: dict[str, str]) -> Response:
    """``body`` with its ETag and ``headers``; 304 without a body when the client already has it."""
    etag = etag_of(body)
    all_headers = {**headers, "ETag": etag}
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=all_headers)
    return Response(body, media_type=media_type, headers=all_headers)
