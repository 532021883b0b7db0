"""The opt-in loopback host candidates (``webrtc_allow_loopback``): off by default, and when on the
gateway's answer offers 127.0.0.1 even where no other interface exists (a namespace with only lo).

The client peer offers a 127.0.0.1 candidate (an offer without any makes aiortc's ICE fail at once,
and its answer then lists none); any connectivity check stays on loopback."""

from __future__ import annotations

import aioice.ice
import pytest
from aiortc import RTCPeerConnection

from server.api.realtime_mount import webrtc_config
from server.settings import Settings
from server.sinks.fanout import RingTickFanout
from server.sinks.webrtc.gateway import WebRtcConfig, WebRtcGateway
from server.sinks.webrtc.loopback import LOOPBACK_V4, loopback_host_candidates_installed, with_loopback


def test_with_loopback_adds_127_0_0_1_once_and_only_for_ipv4() -> None:
    wrapped = with_loopback(lambda v4, v6: ["192.0.2.7"] if v4 else [])
    assert wrapped(True, False) == [LOOPBACK_V4, "192.0.2.7"]
    assert wrapped(False, True) == []
    assert with_loopback(lambda v4, v6: [LOOPBACK_V4])(True, False) == [LOOPBACK_V4]


def test_the_setting_is_off_by_default_and_reaches_the_gateway_config(monkeypatch) -> None:
    assert Settings().webrtc_allow_loopback is False
    assert webrtc_config(Settings()).allow_loopback is False
    monkeypatch.setenv("FACESTREAM_WEBRTC_ALLOW_LOOPBACK", "1")
    assert webrtc_config(Settings()).allow_loopback is True


async def _answer_candidates(monkeypatch, allow_loopback: bool) -> list[str]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [LOOPBACK_V4])
    client = RTCPeerConnection()
    client.addTransceiver("video", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    # As inside a network namespace with only lo: aioice itself finds no usable host address.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])
    fanout = RingTickFanout()
    gateway = WebRtcGateway(WebRtcConfig(allow_loopback=allow_loopback))
    try:
        sdp, _ = await gateway.answer(client.localDescription.sdp, "offer", fanout)
    finally:
        await gateway.close()
        await client.close()
        fanout.close()
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


@pytest.mark.parametrize("allow_loopback", [False, True])
async def test_loopback_candidates_only_when_allowed(monkeypatch, allow_loopback: bool) -> None:
    candidates = await _answer_candidates(monkeypatch, allow_loopback)
    assert loopback_host_candidates_installed() is allow_loopback
    if allow_loopback:
        assert candidates and all(f" {LOOPBACK_V4} " in c and " typ host" in c for c in candidates)
    else:
        assert candidates == []
