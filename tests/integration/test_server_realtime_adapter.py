"""The Session seen through the real-time port: tick fan-out, PCM ingest, barge-in and events."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.types import EngineParams
from server.assembly import create_registry
from server.compute.executor import InferenceExecutor
from server.session.realtime_port import RealtimeSessionPort
from server.settings import Settings
from server.sinks.fanout import FanoutClosed
from tests.support.engines import ProbeEngine


async def _next_event(listener, want: str, timeout: float = 5.0):
    async def loop():
        while True:
            event = await listener.recv()
            if event.type == want:
                return event

    return await asyncio.wait_for(loop(), timeout)


async def test_adapter_streams_ticks_and_speech_events(tmp_path, sample_face_path) -> None:
    settings = Settings(storage_dir=tmp_path / "s", static_dir=None)
    executor = InferenceExecutor(2)
    registry = create_registry(settings, ProbeEngine(), executor)
    try:
        session = await registry.create(sample_face_path.read_bytes(), EngineParams(), 0.5, 24000)
        port = registry.realtime(session.session_id)
        assert isinstance(port, RealtimeSessionPort) and registry.realtime(session.session_id) is port
        viewer = port.fanout.subscribe()
        first = await asyncio.wait_for(viewer.recv_video(), 2)
        audio = await asyncio.wait_for(viewer.recv_audio(), 2)
        assert first.image.shape == (128, 128, 3) and audio.sample_rate == 48000
        events = port.events.listen()

        t = np.arange(24000 * 3) / 24000
        tone = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
        queued = await port.feed_pcm(tone, 24000)
        assert 2.9 < queued <= 3.0 + 0.4
        started = await _next_event(events, "speech_started")
        assert started.data["frame_index"] >= session.playhead - 2

        dropped = await port.interrupt()
        assert 1.5 < dropped < 3.0
        ended = await _next_event(events, "speech_ended")
        assert ended.data["interrupted"] is True

        await port.feed_pcm(tone[:12000], 24000)
        await port.finalize()
        await _next_event(events, "complete", timeout=10)
        with pytest.raises(FanoutClosed):  # the session is over: viewers are told, not left waiting
            for _ in range(100):
                await asyncio.wait_for(viewer.recv_video(), 2)
    finally:
        await registry.shutdown()
        executor.close()
