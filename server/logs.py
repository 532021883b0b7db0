"""Logging for ``facestream serve``: human text or one JSON object per line, with session ids.

Why JSON: log shippers (Loki, ELK, CloudWatch) index fields, so ``session_id`` becomes a filter
instead of a grep. The id comes from, in order: ``extra={"session_id": …}`` on the call, the
``session_context`` context variable (set around request handling or a session's thread), or the
first session id (32 hex digits, the only shape ids have) in the message — so the existing
``log.info("session %s …", sid)`` calls get a structured id without being rewritten. uvicorn's
loggers propagate to the same root handler (serve with ``log_config=None``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import IO

current_session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "facestream_session_id", default=None
)
_SESSION_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def session_context(session_id: str) -> Iterator[None]:
    """Tag every record logged inside the block (same thread/task) with ``session_id``."""
    token = current_session_id.set(session_id)
    try:
        yield
    finally:
        current_session_id.reset(token)


def session_id_of(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "session_id", None)
    if isinstance(explicit, str):
        return explicit
    ctx = current_session_id.get()
    if ctx is not None:
        return ctx
    found = _SESSION_ID.search(record.getMessage())
    return found.group(0) if found else None


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "session_id"?, "thread", "exc"?, ...extra}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        sid = session_id_of(record)
        if sid is not None:
            entry["session_id"] = sid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with ``[session <id8>]`` when a session is known."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        sid = getattr(record, "session_id", None) or current_session_id.get()
        return f"{line} [session {sid}]" if isinstance(sid, str) else line


def configure_logging(
    level: str = "info", fmt: str = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Install one root handler (replacing earlier ones) in ``fmt`` ('text' or 'json')."""
    if fmt not in ("text", "json"):
        raise ValueError("log format must be 'text' or 'json'")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
