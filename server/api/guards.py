"""Request body limits enforced while the body streams in, before anything is parsed or spooled.

Why a middleware of our own: Starlette's multipart parser spools file parts to temporary files
with no total size cap, so without it a 1 GB upload (or a chunked one with no Content-Length)
would land on disk before the route could refuse it. ``BodyLimitMiddleware`` refuses a declared
``Content-Length`` above the route's limit at once (the body is never read) and counts the bytes
of bodies that do not declare one, aborting the read as soon as the count passes the limit. Either
way the client gets 413 with a JSON message; whatever the application started to answer after the
abort is dropped.

Limits per path come from ``limit_for_path(settings)``: the upload routes get their file limit
plus room for the other form fields; every other route gets ``max_request_bytes``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from server.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORM_OVERHEAD_BYTES = 1024 * 1024
"""Room for multipart boundaries, headers and the small text fields next to an upload."""

_API = "/api/audio-driven"


def limit_for_path(settings: Settings) -> Callable[[str], int]:
    """The body limit (bytes) for a request path: the upload it may carry + form overhead."""
    image = settings.max_image_bytes + FORM_OVERHEAD_BYTES
    chunk = settings.max_audio_chunk_bytes + FORM_OVERHEAD_BYTES
    whole = settings.max_audio_file_bytes + settings.max_image_bytes + FORM_OVERHEAD_BYTES
    default = max(settings.max_request_bytes, 1024)

    def limit(path: str) -> int:
        if path == f"{_API}/chunked/init":
            return image
        if path == f"{_API}/chunked/feed":
            return chunk
        if path in (_API, f"{_API}/stream") or path.startswith(f"{_API}/batch"):
            return whole
        return default

    return limit


class BodyTooLarge(Exception):
    """Raised into the application's ``receive`` when the body passes its limit."""


async def send_json_error(
    send: Send, status: int, message: str, headers: dict[str, str] | None = None, prefix: str = ""
) -> None:
    """A complete JSON error response in the API's shape, sent straight on the ASGI channel
    (``prefix="websocket."``: the denial response of a WebSocket upgrade)."""
    body = json.dumps({"status": "error", "message": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": f"{prefix}http.response.start", "status": status, "headers": raw})
    await send({"type": f"{prefix}http.response.body", "body": body})


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Pure ASGI middleware (no buffering): 413 for bodies beyond ``limit_for(path)`` bytes."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await send_json_error(
                send, 413, f"request body of {declared} bytes exceeds the limit of {limit} bytes"
            )
            return
        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the app's answer to an aborted read (a parse error) is replaced below
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await send_json_error(send, 413, f"request body exceeds the limit of {limit} bytes")


MAX_PNG_CHUNKS = 8192
"""A real PNG of the largest allowed upload has a few thousand IDAT chunks at most; Pillow walks
chunks in Python, so a file of ~100 000 tiny chunks would hold the GIL for seconds."""
MAX_PNG_META_CHUNK_BYTES = 4 * 1024 * 1024
"""Ancillary chunks (text, ICC profiles, EXIF) larger than this are refused: a face photo's are KBs."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_structure(data: bytes) -> None:
    """Walk a PNG's chunk table (lengths only, no decompression) and refuse bombs (413).

    Pure and bounded: at most ``MAX_PNG_CHUNKS`` + 1 header reads whatever the file holds, so it
    is cheap enough for any thread. Non-PNG data passes (other formats are checked by Pillow)."""
    from server.errors import PayloadTooLargeError

    if not data.startswith(_PNG_SIGNATURE):
        return
    pos, count = len(_PNG_SIGNATURE), 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise PayloadTooLargeError(f"PNG has more than {MAX_PNG_CHUNKS} chunks")
        if kind not in (b"IDAT", b"IHDR", b"PLTE", b"IEND") and length > MAX_PNG_META_CHUNK_BYTES:
            raise PayloadTooLargeError(
                f"PNG {kind.decode('latin-1')!r} chunk of {length} bytes exceeds {MAX_PNG_META_CHUNK_BYTES}"
            )
        if kind == b"IEND":
            return
        pos += 12 + length


async def check_image(data: bytes, max_pixels: int) -> None:
    """The upload checks of every image route, never on the event loop's thread: the PNG chunk
    table (bounded walk) and Pillow's header parse run in a worker thread."""
    import asyncio

    def check() -> None:
        check_png_structure(data)
        check_image_pixels(data, max_pixels)

    await asyncio.to_thread(check)


def check_image_pixels(data: bytes, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` (413), without decoding it.

    Runs before face analysis so that a decompression bomb (a few KB claiming 100 000² pixels) is
    refused from its header alone. Undecodable headers pass through: the decoder reports them (400).
    """
    import io
    import warnings

    from PIL import Image

    from server.errors import PayloadTooLargeError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError as e:  # beyond Pillow's own hard cap (2 × 89 MP)
        raise PayloadTooLargeError(f"image declares too many pixels: {e}") from None
    except Exception:  # not an image or a broken header: the decoder's job to say so
        return
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels"
        )


def storage_free_bytes(directory: Path) -> int | None:
    """Free bytes on the volume holding ``directory`` (or its nearest existing parent)."""
    for candidate in (directory, *directory.parents):
        try:
            st = os.statvfs(candidate)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        return st.f_bavail * st.f_frsize
    return None


def check_storage(settings: Settings) -> None:
    """Refuse a new session (507) while the storage volume is below ``min_free_storage_mb``.

    Why before creating it: a session started on a full disk would only fail seconds later, when
    its encoder cannot write a segment; refusing up front gives the client a clear answer.
    """
    from server.errors import StorageUnavailableError

    free = storage_free_bytes(settings.storage_dir)
    want = settings.min_free_storage_mb * 1024 * 1024
    if free is None:
        raise StorageUnavailableError("session storage is unavailable: cannot read its free space")
    if free < want:
        raise StorageUnavailableError(
            f"session storage is unavailable: {free / 1048576:.1f} MiB free, "
            f"{settings.min_free_storage_mb:g} MiB needed for a new session"
        )
