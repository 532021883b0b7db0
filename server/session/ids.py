"""Session ids and HLS file names: the only client strings that ever select a file.

Why strict patterns: session ids are server-generated, so anything else (``../x``, upper case,
NUL bytes) is rejected before it reaches a dict lookup, a path or a log line. HLS file names are
matched against the two shapes the sink writes.

An id is 32 lowercase hex digits (a UUID4), optionally prefixed by the node tag of the node that
made it: ``<node_id>-<32 hex>`` (``Settings.node_id``, set when several nodes run behind a load
balancer). Why a tag inside the id: the balancer (deploy/haproxy/haproxy.cfg) routes every request
of a session to its node by reading the tag from the URL, a header or a query parameter, with no
table to share or lose, and a node that receives a foreign tag knows the owner is unreachable.
"""

from __future__ import annotations

import re
import uuid

from server.errors import SessionNotFoundError
from server.settings import NODE_ID_RE

_SESSION_ID = re.compile(rf"(?:(?P<node>{NODE_ID_RE})-)?[0-9a-f]{{32}}")
_HLS_FILE = re.compile(r"playlist\.m3u8|seg_[0-9]{5,9}\.ts")

HLS_CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}


def new_session_id(node_id: str = "") -> str:
    """A fresh UUID4 as 32 lowercase hex digits, behind ``<node_id>-`` when a node id is given."""
    if node_id and re.fullmatch(NODE_ID_RE, node_id) is None:
        raise ValueError(f"invalid node id {node_id!r}")
    token = uuid.uuid4().hex
    return f"{node_id}-{token}" if node_id else token


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


def node_of(session_id: str) -> str | None:
    """The node tag of a well-formed session id (None when untagged); raises on a malformed id."""
    match = _SESSION_ID.fullmatch(validate_session_id(session_id))
    return match.group("node") if match is not None else None


def is_valid_hls_file(name: str) -> bool:
    return isinstance(name, str) and _HLS_FILE.fullmatch(name) is not None


def hls_content_type(name: str) -> str:
    return HLS_CONTENT_TYPES[name[name.rfind(".") :]]
