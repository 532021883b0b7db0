"""WebSocket ingest protocol parsing/validation, event JSON and SSE formatting."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.api import protocol
from server.errors import ProtocolError
from server.session import events as ev


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"final"}', protocol.Control.FINAL),
        ('{"type": "interrupt", "extra": 1}', protocol.Control.INTERRUPT),
        ('{"type":"keepalive"}', protocol.Control.KEEPALIVE),
    ],
)
def test_parse_control(text: str, expected: protocol.Control) -> None:
    assert protocol.parse_control(text) is expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("final", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"kind":"final"}', 'string "type"'),
        ('{"type": 3}', 'string "type"'),
        ('{"type":"stop"}', "unknown control type 'stop'.*final, interrupt, keepalive"),
        ('{"type":"final","pad":"' + "x" * 5000 + '"}', "longer than"),
    ],
)
def test_parse_control_rejects_with_clear_message(text: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        protocol.parse_control(text)


@given(st.text(max_size=200))
def test_parse_control_never_crashes(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.parse_control(text)


def test_decode_pcm16_round_trips_little_endian() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768], np.int16)
    out = protocol.decode_pcm16(pcm.astype("<i2").tobytes(), 24_000)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, pcm)
    out[0] = 5  # a writable copy, not a view of the message
    assert out[0] == 5


@pytest.mark.parametrize("seconds", [0.02, 0.1, 1.0])
def test_decode_pcm16_accepts_20ms_to_1s(seconds: float) -> None:
    rate = 24_000
    n = int(rate * seconds)
    assert len(protocol.decode_pcm16(bytes(2 * n), rate)) == n


@pytest.mark.parametrize(
    ("data", "match"),
    [(b"", "empty"), (b"\x00\x01\x02", "even number"), (bytes(2 * 24_001), "limit is 1 s")],
)
def test_decode_pcm16_rejects(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        protocol.decode_pcm16(data, 24_000)


def test_decode_pcm16_limit_is_configurable() -> None:
    assert len(protocol.decode_pcm16(bytes(2 * 48_000), 24_000, max_chunk_seconds=2.0)) == 48_000


def test_events_serialise_with_type_and_fields() -> None:
    assert json.loads(ev.accepted(3, 480, 1.23456).to_json()) == {
        "type": "accepted",
        "seq": 3,
        "samples": 480,
        "queued_seconds": 1.235,
    }
    bp = json.loads(ev.backpressure(4, 10.0, 0.5, "queue full").to_json())
    assert bp == {
        "type": "backpressure",
        "seq": 4,
        "queued_seconds": 10.0,
        "retry_after_seconds": 0.5,
        "message": "queue full",
    }
    started = ev.speech_started(50, 25).to_dict()
    assert started == {"type": "speech_started", "frame_index": 50, "stream_time": 2.0}
    ended = ev.speech_ended(75, 25, interrupted=True).to_dict()
    assert ended["interrupted"] is True and ended["stream_time"] == 3.0
    assert ev.events_lost(7).to_dict() == {"type": "events_lost", "count": 7}


def test_event_type_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        ev.ServerEvent("bogus")
    with pytest.raises(ValueError, match="own 'type'"):
        ev.ServerEvent("error", {"type": "x"})


def test_format_sse_record() -> None:
    record = protocol.format_sse(ev.interrupted(0.5), event_id=9)
    assert record == 'id: 9\nevent: interrupted\ndata: {"type":"interrupted","dropped_seconds":0.5}\n\n'
    assert protocol.format_sse(ev.complete()).startswith("event: complete\n")
    assert protocol.SSE_KEEPALIVE.startswith(":") and protocol.SSE_KEEPALIVE.endswith("\n\n")
