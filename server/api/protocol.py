"""The WebSocket ingest protocol and SSE framing, as pure functions over bytes/text.

Client → server on ``/api/audio-driven/chunked/ws/{session_id}``:

* binary message: PCM16 little-endian mono at the session's ``audio_sample_rate``; any whole number
  of samples up to ``max_chunk_seconds`` (1 s by default; 20 ms … 1 s is the intended range, smaller
  messages such as a browser worklet's 128-sample frames are accepted too);
* text message: JSON ``{"type": "final" | "interrupt" | "keepalive"}``.

Server → client (same socket, and the SSE stream): JSON objects with a ``type`` among
``EVENT_TYPES`` (constructors in ``server.session.events``). Nothing is dropped silently:
a refused chunk gets a ``backpressure`` event naming its ``seq``, a listener that fell behind gets
``events_lost`` with the count.
"""

from __future__ import annotations

import enum
import json

import numpy as np

from server.errors import ProtocolError
from server.session.events import ServerEvent

MAX_CONTROL_CHARS = 4096


class Control(enum.Enum):
    FINAL = "final"
    INTERRUPT = "interrupt"
    KEEPALIVE = "keepalive"


def parse_control(text: str) -> Control:
    """Parse one text message; raises ProtocolError saying what is wrong."""
    if len(text) > MAX_CONTROL_CHARS:
        raise ProtocolError(f"control message longer than {MAX_CONTROL_CHARS} characters")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"control message is not JSON: {exc.msg}") from None
    except RecursionError:  # "[[[[…" within MAX_CONTROL_CHARS: the parser's depth limit, not a 500
        raise ProtocolError("control message is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError('control message must be a JSON object like {"type": "final"}')
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError('control message needs a string "type"')
    try:
        return Control(kind)
    except ValueError:
        allowed = ", ".join(c.value for c in Control)
        raise ProtocolError(f"unknown control type {kind!r} (expected one of: {allowed})") from None


def decode_pcm16(data: bytes, sample_rate: int, *, max_chunk_seconds: float = 1.0) -> np.ndarray:
    """One binary message → mono int16 samples; raises ProtocolError for unusable payloads."""
    if not data:
        raise ProtocolError("empty audio message")
    if len(data) % 2:
        raise ProtocolError(f"audio message has {len(data)} bytes; PCM16 needs an even number")
    samples = len(data) // 2
    max_samples = round(max_chunk_seconds * sample_rate)
    if samples > max_samples:
        raise ProtocolError(
            f"audio message is {samples / sample_rate:.3f} s; the limit is {max_chunk_seconds:g} s "
            f"at {sample_rate} Hz (split it into smaller messages)"
        )
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


SSE_KEEPALIVE = ": keepalive\n\n"


def format_sse(event: ServerEvent, event_id: int | None = None) -> str:
    """One ``text/event-stream`` record: the event type as SSE ``event`` and its JSON as ``data``."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event.type}\ndata: {event.to_json()}\n\n"
