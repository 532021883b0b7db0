"""Session ids and HLS file names: the only client strings that ever select a file.

Why strict patterns: session ids are server-generated UUID4 hex strings, so anything else
(``../x``, upper case, dashes, NUL bytes) is rejected before it reaches a dict lookup, a path
or a log line. HLS file names are matched against the two shapes the sink writes.
"""

from __future__ import annotations

import re
import uuid

from server.errors import SessionNotFoundError

_SESSION_ID = re.compile(r"[0-9a-f]{32}")
_HLS_FILE = re.compile(r"playlist\.m3u8|seg_[0-9]{5,9}\.ts")

HLS_CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}


def new_session_id() -> str:
    """A fresh UUID4 as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def is_valid_session_id(value: str) -> bool:
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def validate_session_id(value: str) -> str:
    """Return ``value`` if it is a well-formed session id, else raise SessionNotFoundError.

    A malformed id is reported as "not found" (404) rather than 400 so that probing reveals
    nothing about the id format beyond what the API documents.
    """
    if not is_valid_session_id(value):
        raise SessionNotFoundError("session not found (malformed session id)")
    return value


def is_valid_hls_file(name: str) -> bool:
    return isinstance(name, str) and _HLS_FILE.fullmatch(name) is not None


def hls_content_type(name: str) -> str:
    return HLS_CONTENT_TYPES[name[name.rfind(".") :]]
