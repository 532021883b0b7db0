"""Server-side domain errors and the ONE place where every domain error becomes an HTTP status.

Route code raises typed errors (its own, the engine's, the sink's); ``install_error_handlers``
maps them to JSON ``{"status": "error", "message": ...}`` responses. Unknown exceptions are
logged and answered 500 with a generic message (no internals leak to clients).
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import (
    EngineUnavailableError,
    FacestreamError,
    ImageTooSmallError,
    InvalidAudioError,
    InvalidImageError,
    NoFaceFoundError,
)

log = logging.getLogger("facestream.errors")


class SessionNotFoundError(FacestreamError):
    """No live session has this id (or the id is malformed)."""


class InvalidFieldError(FacestreamError):
    """A form field is missing, malformed or out of its documented range."""


class PayloadTooLargeError(FacestreamError):
    """An upload (bytes) or a decoded audio chunk (duration) exceeds its configured limit."""


class SessionFinishedError(FacestreamError):
    """The session no longer accepts speech (final chunk received, complete, failed or closed)."""


class RetryLaterError(FacestreamError):
    """Base of the errors that tell the client to come back: carries ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class SpeechQueueFullError(RetryLaterError):
    """Accepting this chunk would exceed the session's queued-speech bound (nothing was dropped)."""


class CapacityError(RetryLaterError):
    """The server already runs ``max_sessions`` sessions."""


class RecordingUnavailableError(FacestreamError):
    """A session recording was asked for before the session published any segment."""


class StorageUnavailableError(FacestreamError):
    """The session storage dir cannot be written (full, read-only, missing): 507, never a 500."""


class IllegalTransitionError(FacestreamError):
    """A session state change that the lifecycle does not allow (a bug or a race lost)."""


_STATUS: list[tuple[type[Exception], int]] = [
    (SessionNotFoundError, 404),
    (InvalidFieldError, 422),
    (PayloadTooLargeError, 413),
    (SessionFinishedError, 409),
    (IllegalTransitionError, 409),
    (RecordingUnavailableError, 409),
    (SpeechQueueFullError, 429),
    (CapacityError, 503),
    (StorageUnavailableError, 507),
    (InvalidImageError, 400),
    (ImageTooSmallError, 422),
    (NoFaceFoundError, 422),
    (InvalidAudioError, 400),
    (EngineUnavailableError, 503),
]


def _realtime_statuses() -> list[tuple[type[Exception], int]]:
    """The real-time edges' errors (WebSocket/WebRTC), so that their statuses live here too."""
    try:
        from server.realtime.errors import REALTIME_ERROR_STATUS
    except ImportError:  # pragma: no cover - the real-time package is optional
        return []
    return list(REALTIME_ERROR_STATUS.items())


_STATUS += _realtime_statuses()


def _llhls_statuses() -> list[tuple[type[Exception], int]]:
    """LL-HLS delivery errors (blocking playlist reload: 400 / 503 per RFC 8216bis)."""
    from server.llhls_errors import LLHLS_ERROR_STATUS

    return list(LLHLS_ERROR_STATUS.items())


_STATUS += _llhls_statuses()


def status_for(exc: Exception) -> int:
    """HTTP status of a domain error (first matching class in ``_STATUS``; 400 for other domain errors)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400 if isinstance(exc, FacestreamError) else 500


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacestreamError)
    async def _domain(_: Request, exc: FacestreamError) -> JSONResponse:
        retry = getattr(exc, "retry_after", None) or getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(max(1, math.ceil(retry)))} if retry else None
        return error_response(status_for(exc), str(exc) or type(exc).__name__, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
        return error_response(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error")
