"""Domain errors of the real-time edges; the server maps them to statuses in its one place.

``REALTIME_ERROR_STATUS`` is the suggested mapping for the lead's exception handler.
"""

from __future__ import annotations

from models.errors import FacestreamError


class ProtocolError(FacestreamError):
    """A WebSocket message or an HTTP body that breaks the ingest protocol."""


class InvalidOfferError(FacestreamError):
    """The WebRTC offer is not a usable SDP offer (wrong type, unparsable, no audio/video)."""


class TooManyViewersError(FacestreamError):
    """The session already has its maximum number of WebRTC viewers."""

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SpeechBacklogFullError(FacestreamError):
    """Accepting this chunk would exceed the session's speech queue bound; nothing was accepted.

    The session raises it from ``feed_pcm`` (subclass it from the server's own queue-full error or
    translate); the WebSocket turns it into a ``backpressure`` event instead of closing.
    """

    def __init__(self, message: str, *, queued_seconds: float, retry_after_s: float) -> None:
        super().__init__(message)
        self.queued_seconds = queued_seconds
        self.retry_after_s = retry_after_s


REALTIME_ERROR_STATUS: dict[type[FacestreamError], int] = {
    ProtocolError: 400,
    InvalidOfferError: 400,
    TooManyViewersError: 503,
    SpeechBacklogFullError: 429,
}
