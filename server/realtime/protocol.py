"""The WebSocket ingest protocol and the server's events, as pure functions over bytes/text.

Client → server on ``/api/audio-driven/chunked/ws/{session_id}``:

* binary message: PCM16 little-endian mono at the session's ``audio_sample_rate``; any whole number
  of samples up to ``max_chunk_seconds`` (1 s by default; 20 ms … 1 s is the intended range, smaller
  messages such as a browser worklet's 128-sample frames are accepted too);
* text message: JSON ``{"type": "final" | "interrupt" | "keepalive"}``.

Server → client (same socket, and the SSE stream): JSON objects with a ``type`` among
``EVENT_TYPES``; see the constructors below for each event's fields. Nothing is dropped silently:
a refused chunk gets a ``backpressure`` event naming its ``seq``, a listener that fell behind gets
``events_lost`` with the count.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.realtime.errors import ProtocolError

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


EVENT_TYPES = frozenset(
    {
        "accepted",
        "backpressure",
        "final_accepted",
        "interrupted",
        "speech_started",
        "speech_ended",
        "complete",
        "error",
        "events_lost",
    }
)


@dataclass(frozen=True, slots=True)
class ServerEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if "type" in self.data:
            raise ValueError("event data must not carry its own 'type'")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)


def accepted(seq: int, samples: int, queued_seconds: float) -> ServerEvent:
    """Binary message number ``seq`` (0-based per socket) is scheduled; speech now queued."""
    return ServerEvent(
        "accepted", {"seq": seq, "samples": samples, "queued_seconds": round(queued_seconds, 3)}
    )


def backpressure(seq: int, queued_seconds: float, retry_after_s: float, message: str) -> ServerEvent:
    """Message ``seq`` was NOT accepted (queue full); the client should resend it after a while."""
    return ServerEvent(
        "backpressure",
        {
            "seq": seq,
            "queued_seconds": round(queued_seconds, 3),
            "retry_after_seconds": round(retry_after_s, 3),
            "message": message,
        },
    )


def final_accepted() -> ServerEvent:
    return ServerEvent("final_accepted")


def interrupted(dropped_seconds: float) -> ServerEvent:
    return ServerEvent("interrupted", {"dropped_seconds": round(dropped_seconds, 3)})


def speech_started(frame_index: int, fps: int) -> ServerEvent:
    """Published by the session when the first speech frame of an utterance is on the timeline."""
    return ServerEvent(
        "speech_started", {"frame_index": frame_index, "stream_time": round(frame_index / fps, 3)}
    )


def speech_ended(frame_index: int, fps: int, *, interrupted: bool = False) -> ServerEvent:
    """Published at the first idle frame after speech (``interrupted`` if cut by barge-in)."""
    return ServerEvent(
        "speech_ended",
        {"frame_index": frame_index, "stream_time": round(frame_index / fps, 3), "interrupted": interrupted},
    )


def complete() -> ServerEvent:
    return ServerEvent("complete")


def error(code: str, message: str) -> ServerEvent:
    return ServerEvent("error", {"code": code, "message": message})


def events_lost(count: int) -> ServerEvent:
    return ServerEvent("events_lost", {"count": count})


SSE_KEEPALIVE = ": keepalive\n\n"


def format_sse(event: ServerEvent, event_id: int | None = None) -> str:
    """One ``text/event-stream`` record: the event type as SSE ``event`` and its JSON as ``data``."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event.type}\ndata: {event.to_json()}\n\n"
