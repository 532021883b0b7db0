"""Domain errors of LL-HLS delivery; ``server.errors`` (the one mapping) turns them into statuses.

RFC 8216bis §6.2.5.2: a blocking request for a segment more than two beyond the last one is
answered 400; one that cannot be satisfied within about three target durations is answered 503.
"""

from __future__ import annotations

from models.errors import FacestreamError


class BadBlockingRequestError(FacestreamError):
    """``_HLS_msn``/``_HLS_part`` malformed, ``_HLS_part`` without ``_HLS_msn``, or msn too far ahead."""


class BlockingReloadTimeoutError(FacestreamError):
    """The requested part did not appear within the blocking timeout."""


LLHLS_ERROR_STATUS: dict[type[Exception], int] = {
    BadBlockingRequestError: 400,
    BlockingReloadTimeoutError: 503,
}
