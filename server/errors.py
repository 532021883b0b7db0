"""Server-side domain errors and the ONE place where every domain error becomes an HTTP status.

Route code raises typed errors (its own, the engine's, the sink's); ``install_error_handlers``
maps them to JSON ``{"status": "error", "message": ...}`` responses. Unknown exceptions are
logged and answered 500 with a generic message (no internals leak to clients).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hls.errors import SinkError
from models.errors import (
    EngineUnavailableError,
    FacestreamError,
    FaceTurnedAwayError,
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


class NotLiveSessionError(FacestreamError):
    """A real-time route (speech input, events, WebRTC, interrupt) on a whole-audio render."""


class NodeDrainingError(CapacityError):
    """This node is draining (deploy): it takes no new sessions; live ones run to their end."""


class SessionNodeLostError(FacestreamError):
    """The session id names another node (``<node>-<hex>``): behind the balancer, a request reaches
    a node that does not own the session only when the owner is down or gone, so the session is
    lost (410, not 404: the id was real; not 503: retrying cannot bring it back)."""


class RecordingUnavailableError(FacestreamError):
    """A session recording was asked for before the session published any segment."""


class StorageUnavailableError(FacestreamError):
    """The session storage dir cannot be written (full, read-only, missing): 507, never a 500."""


class IllegalTransitionError(FacestreamError):
    """A session state change that the lifecycle does not allow (a bug or a race lost)."""


class AuthenticationError(FacestreamError):
    """No credential, or one that is neither a configured API key nor one of the server's tokens."""


class ForbiddenError(FacestreamError):
    """A real credential that does not grant this (viewer token on a control route, another
    session's token, an API key that does not own the session, a foreign Origin)."""


class QuotaExceededError(RetryLaterError):
    """This client (API key, or address without keys) already holds its share of sessions or
    listeners (``max_sessions_per_client`` and the per-client listener caps)."""


# Real-time edges (WebSocket, SSE, WebRTC)

class ProtocolError(FacestreamError):
    """A WebSocket message or an HTTP body that breaks the ingest protocol."""


class InvalidOfferError(FacestreamError):
    """The WebRTC offer is not a usable SDP offer (wrong type, unparsable, no audio/video)."""


class TooManyViewersError(RetryLaterError):
    """The session already has its maximum number of WebRTC viewers (or SSE/WebSocket listeners)."""

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message, retry_after_s)
        self.retry_after_s = retry_after_s


class SpeechBacklogFullError(RetryLaterError):
    """Accepting this chunk would exceed the session's speech queue bound; nothing was accepted.

    The session raises it from ``feed_pcm`` (subclass it from the server's own queue-full error or
    translate); the WebSocket turns it into a ``backpressure`` event instead of closing.
    """

    def __init__(self, message: str, *, queued_seconds: float, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s)
        self.queued_seconds = queued_seconds
        self.retry_after_s = retry_after_s


# LL-HLS delivery (RFC 8216bis §6.2.5.2: msn too far ahead → 400; not satisfiable in time → 503)

class BadBlockingRequestError(FacestreamError):
    """``_HLS_msn``/``_HLS_part`` malformed, ``_HLS_part`` without ``_HLS_msn``, or msn too far ahead."""


class BlockingReloadTimeoutError(FacestreamError):
    """The requested part did not appear within the blocking timeout."""


_STATUS: list[tuple[type[Exception], int]] = [
    (SessionNotFoundError, 404),
    (SessionNodeLostError, 410),
    (AuthenticationError, 401),
    (ForbiddenError, 403),
    (QuotaExceededError, 429),
    (InvalidFieldError, 422),
    (PayloadTooLargeError, 413),
    (SessionFinishedError, 409),
    (IllegalTransitionError, 409),
    (NotLiveSessionError, 409),
    (RecordingUnavailableError, 409),
    (SpeechQueueFullError, 429),
    (CapacityError, 503),
    (StorageUnavailableError, 507),
    (InvalidImageError, 400),
    (ImageTooSmallError, 422),
    (NoFaceFoundError, 422),
    (FaceTurnedAwayError, 422),
    (InvalidAudioError, 400),
    (EngineUnavailableError, 503),
    (ProtocolError, 400),
    (InvalidOfferError, 400),
    (TooManyViewersError, 503),
    (SpeechBacklogFullError, 429),
    (BadBlockingRequestError, 400),
    (BlockingReloadTimeoutError, 503),
    # bases last: reached only by subclasses without a row of their own
    (SinkError, 503),  # the session's video encoder failed or stalled (ends that session only)
    (RetryLaterError, 503),
]


STATUS_TABLE: tuple[tuple[type[Exception], int], ...] = tuple(_STATUS)
"""The table, read-only, for tests and docs."""


def status_for(exc: BaseException) -> int:
    """HTTP status of an error: the first matching class in ``_STATUS`` (one MRO-order walk, so a
    subclass listed before its base wins), Starlette's own status for ``HTTPException``, 404 for a
    ``LookupError``, 400 for any other domain error and 500 for everything else."""
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    if isinstance(exc, LookupError):
        return 404
    return 400 if isinstance(exc, FacestreamError) else 500


WS_CLOSE_BASE = 4000
"""WebSocket close codes for errors are ``4000 + HTTP status`` (4404 not found, 4409 finished …):
the 4000–4999 range is the application's (RFC 6455 §7.4.2), and the status reads the same as
on the HTTP routes."""


def close_code_for(exc: BaseException) -> int:
    """The WebSocket close code of an error, from the same table as the HTTP statuses."""
    return WS_CLOSE_BASE + status_for(exc)


def retry_after_for(exc: BaseException) -> int | None:
    """Whole seconds for a ``Retry-After`` header, for the errors that carry one."""
    return exc.retry_after if isinstance(exc, RetryLaterError) else None


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacestreamError)
    async def _domain(_: Request, exc: FacestreamError) -> JSONResponse:
        retry = retry_after_for(exc)
        headers = {"Retry-After": str(retry)} if retry else None
        if isinstance(exc, AuthenticationError):
            headers = {"WWW-Authenticate": "Bearer"}
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
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error")
