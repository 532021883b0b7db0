"""``AsyncRealtimeClient`` (realtime_streaming_client.py) against a live server: streaming, events,
interrupt, and backpressure surfacing as an exception instead of silent loss."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from realtime_streaming_client import AsyncRealtimeClient, RealtimeBackpressureError
from server.app import create_app
from server.settings import Settings
from tests.support.engines import ProbeEngine
from tests.support.servers import live_server

API = "/api/audio-driven/chunked"
RATE = 24_000


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (9000 * np.sin(2 * np.pi * 200 * t)).astype(np.int16)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    settings = Settings(
        storage_dir=tmp_path_factory.mktemp("c") / "s", static_dir=None, max_queued_speech_s=2.0
    )
    with live_server(create_app(settings, engine=ProbeEngine())) as base:
        yield base


async def _session(base: str, face: bytes) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.post(
            f"{API}/init",
            files={"image": ("face.jpg", face, "image/jpeg")},
            data={"audio_sample_rate": str(RATE), "chunk_duration": "0.5"},
        )
        assert r.status_code == 200, r.text
        return r.json()["session_id"]


async def test_stream_interrupt_final_and_events(url, sample_face_path) -> None:
    sid = await _session(url, sample_face_path.read_bytes())
    async with AsyncRealtimeClient(url, sid, RATE) as rt:
        assert rt.url.startswith("ws://127.0.0.1:") and rt.url.endswith(f"/ws/{sid}")
        sent = await rt.stream(_tone(0.5), realtime=True)  # paced: ~0.4 s
        assert sent == 25
        accepted = await rt.wait_for("accepted")
        assert accepted["seq"] == 0 and accepted["samples"] == RATE // 50
        await rt.wait_for("speech_started")
        await rt.interrupt()
        interrupted = await rt.wait_for("interrupted")
        assert interrupted["dropped_seconds"] > 0
        await rt.keepalive()
        await rt.send_pcm(_tone(0.2).astype(np.float32) / 32768)  # float input is converted
        await rt.final()
        await rt.wait_for("complete", timeout=10)
        assert [e async for e in rt.events()] == []  # the socket closed with the session


async def test_backpressure_raises_with_the_refused_message(url, sample_face_path) -> None:
    sid = await _session(url, sample_face_path.read_bytes())
    async with AsyncRealtimeClient(url, sid, RATE, message_ms=500) as rt:
        with pytest.raises(RealtimeBackpressureError) as info:
            for _ in range(4):  # 2 s bound: 6 s sent faster than real time must be refused somewhere
                await rt.stream(_tone(1.5), realtime=False)
                await rt.wait_for("accepted")
            await rt.stream(_tone(0.5), realtime=False)
        assert info.value.seq >= 3 and info.value.retry_after > 0
