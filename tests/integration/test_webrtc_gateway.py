"""WebRtcGateway end to end on loopback: an aiortc client peer receives the session's timeline."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.errors import InvalidOfferError, TooManyViewersError
from server.sinks.fanout import RingTickFanout
from server.sinks.webrtc.gateway import WebRtcConfig, WebRtcGateway
from tests.support.realtime import (
    OUT_RATE,
    SyntheticClock,
    ToneTrack,
    ViewerClient,
    allow_loopback_ice,
    dominant_frequency,
)


@pytest.fixture(autouse=True)
def _loopback_ice(monkeypatch) -> None:
    allow_loopback_ice(monkeypatch)


@pytest.fixture
async def live():
    """A ticking session timeline (synthetic frames, real 25 fps clock thread) and a gateway."""
    fanout = RingTickFanout()
    clock = SyntheticClock(fanout).start()
    gateway = WebRtcGateway(WebRtcConfig(max_viewers_per_session=2))
    yield fanout, gateway
    await gateway.close()
    fanout.close()
    clock.stop()


async def connect(gateway: WebRtcGateway, fanout, client: ViewerClient, on_audio_in=None) -> None:
    sdp, sdp_type = await gateway.answer(*(await client.offer()), fanout, on_audio_in)
    assert sdp_type == "answer"
    await client.accept(sdp, sdp_type)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_two_viewers_receive_paced_video_and_audio(live) -> None:
    fanout, gateway = live
    clients = [ViewerClient(), ViewerClient()]
    try:
        for client in clients:
            await connect(gateway, fanout, client)
        assert gateway.viewers_of(fanout) == 2
        await wait_until(lambda: all(len(c.video) >= 40 and len(c.audio) >= 80 for c in clients), 10.0)
    finally:
        for client in clients:
            await client.close()
    for client in clients:
        pts = np.array([p for p, _ in client.video[:40]])
        steps = np.diff(pts)
        assert np.all(steps % 3600 == 0) and np.mean(steps == 3600) >= 0.9, steps
        # Re-measure the content: each frame's gray band advances by 37 levels per tick of pts.
        gray = np.array([int(np.median(img[:16, :, 0])) for _, img in client.video[:40]])
        expected = (gray[:-1] + 37 * (steps // 3600)) % 256
        circular = np.minimum(np.abs(gray[1:] - expected), 256 - np.abs(gray[1:] - expected))
        assert np.all(circular <= 8), (gray, steps)
        audio = client.audio[:80]
        assert {f.sample_rate for f in audio} == {48_000}
        assert {f.samples for f in audio} == {960}  # 20 ms frames
        assert np.mean(np.diff([f.pts for f in audio]) == 960) >= 0.9
        pcm = np.concatenate([f.to_ndarray().reshape(-1, len(f.layout.channels))[:, 0] for f in audio[10:]])
        assert abs(dominant_frequency(pcm, 48_000) - 440) < 5


async def test_microphone_track_feeds_session_full_duplex(live) -> None:
    fanout, gateway = live
    received: list[tuple[np.ndarray, int]] = []
    client = ViewerClient(mic=ToneTrack(1000.0))
    try:
        await connect(gateway, fanout, client, on_audio_in=lambda pcm, rate: received.append((pcm, rate)))
        await wait_until(lambda: sum(len(p) for p, _ in received) >= OUT_RATE and len(client.video) >= 10)
    finally:
        await client.close()
    assert {rate for _, rate in received} == {48_000}
    assert all(p.dtype == np.int16 and p.ndim == 1 for p, _ in received)
    pcm = np.concatenate([p for p, _ in received])
    assert abs(dominant_frequency(pcm[-OUT_RATE // 2 :], 48_000) - 1000) < 5


async def test_session_close_ends_viewers(live) -> None:
    fanout, gateway = live
    client = ViewerClient()
    try:
        await connect(gateway, fanout, client)
        await wait_until(lambda: len(client.video) >= 3)
        fanout.close()
        await wait_until(lambda: gateway.viewer_count == 0)
        await wait_until(lambda: "video" in client.ended and "audio" in client.ended)
    finally:
        await client.close()
    assert fanout.subscriber_count == 0


async def test_gateway_close_closes_every_peer(live) -> None:
    fanout, gateway = live
    client = ViewerClient()
    try:
        await connect(gateway, fanout, client)
        await gateway.close()
        assert gateway.viewer_count == 0
        await wait_until(lambda: fanout.subscriber_count == 0)
    finally:
        await client.close()


async def test_viewer_limit(live) -> None:
    fanout, gateway = live
    clients = [ViewerClient() for _ in range(3)]
    try:
        await connect(gateway, fanout, clients[0])
        await connect(gateway, fanout, clients[1])
        with pytest.raises(TooManyViewersError):
            await connect(gateway, fanout, clients[2])
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize(
    ("sdp", "sdp_type", "match"),
    [
        ("v=0\r\n", "answer", 'type "offer"'),
        ("hello", "offer", "v=0"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video", "offer", "unusable SDP"),
    ],
)
async def test_bad_offers_are_rejected_without_leaking(live, sdp: str, sdp_type: str, match: str) -> None:
    fanout, gateway = live
    with pytest.raises(InvalidOfferError, match=match):
        await gateway.answer(sdp, sdp_type, fanout)
    assert gateway.viewer_count == 0 and fanout.subscriber_count == 0


async def test_offer_without_media_is_rejected(live) -> None:
    from aiortc import RTCPeerConnection

    fanout, gateway = live
    pc = RTCPeerConnection()
    pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())
    try:
        with pytest.raises(InvalidOfferError, match="no audio or video"):
            await gateway.answer(pc.localDescription.sdp, "offer", fanout)
    finally:
        await pc.close()
    assert gateway.viewer_count == 0 and fanout.subscriber_count == 0
