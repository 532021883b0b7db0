"""The real-time routes on a real uvicorn (loopback): WebSocket ingest, interrupt, SSE, WebRTC.

The session here is a small honest implementation of ``RealtimeSessionPort`` (a bounded speech
queue in seconds, a real fan-out ticked by a clock thread, a real event bus); the real session
is wired by the server and tested end to end there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from models.errors import FacestreamError
from server.api.realtime import build_realtime_router
from server.errors import SpeechBacklogFullError, install_error_handlers
from server.session import events as ev
from server.session.events import EventBus
from server.sinks.fanout import RingTickFanout
from server.sinks.webrtc.gateway import WebRtcGateway
from tests.support.realtime import SyntheticClock, ViewerClient, allow_loopback_ice
from tests.support.servers import live_server

RATE = 24_000


class SessionFinishedError(FacestreamError):
    pass


class QueueSession:
    """A session port over a speech queue measured in seconds."""

    def __init__(self, session_id: str, *, max_queued_s: float = 2.0) -> None:
        self.session_id = session_id
        self.sample_rate = RATE
        self.fanout = RingTickFanout()
        self.events = EventBus()
        self.fed: list[np.ndarray] = []
        self.queued_s = 0.0
        self.max_queued_s = max_queued_s
        self.finalized = False
        self.touches = 0

    def feed_pcm(self, pcm: np.ndarray, sample_rate: int) -> float:
        if self.finalized:
            raise SessionFinishedError("the session is finalizing; no more speech")
        seconds = len(pcm) / sample_rate
        if self.queued_s + seconds > self.max_queued_s:
            raise SpeechBacklogFullError("speech queue full", queued_seconds=self.queued_s, retry_after_s=0.5)
        if self.queued_s == 0:
            self.events.publish(ev.speech_started(0, 25))
        self.fed.append(pcm)
        self.queued_s += seconds
        return self.queued_s

    def finalize(self) -> None:
        self.finalized = True

    async def interrupt(self) -> float:  # coroutine on purpose: the routes await either kind
        dropped, self.queued_s = self.queued_s, 0.0
        self.events.publish(ev.speech_ended(10, 25, interrupted=True))
        return dropped

    def touch(self) -> None:
        self.touches += 1

    def close(self) -> None:
        self.fanout.close()
        self.events.close()


class LiveServer:
    def __init__(self) -> None:
        self.sessions: dict[str, QueueSession] = {}
        self.gateway: WebRtcGateway | None = None

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI):
            self.gateway = WebRtcGateway()
            app.include_router(build_realtime_router(self.get_session, self.gateway))
            yield
            await self.gateway.close()

        app = FastAPI(lifespan=lifespan)

        install_error_handlers(app)

        @app.exception_handler(LookupError)
        async def not_found(request: Request, exc: LookupError) -> JSONResponse:
            return JSONResponse({"status": "error", "message": str(exc)}, status_code=404)

        self.app = app
        self.url = ""

    def get_session(self, session_id: str) -> QueueSession:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise LookupError(f"session {session_id!r} not found") from None

    @property
    def http(self) -> str:
        return self.url

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://", 1)


@pytest.fixture(scope="module")
def server():
    live = LiveServer()
    with live_server(live.app) as url:
        live.url = url
        yield live


@pytest.fixture
def session(server):
    s = QueueSession(f"s{len(server.sessions)}")
    server.sessions[s.session_id] = s
    yield s
    s.close()


async def next_event(ws, timeout: float = 3.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def pcm_bytes(seconds: float, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, int(RATE * seconds), dtype=np.int16).astype("<i2").tobytes()


async def test_ws_feeds_20ms_chunks_bit_exact(server, session) -> None:
    chunks = [pcm_bytes(0.02, seed=i) for i in range(10)]
    async with ws_connect(f"{server.ws}/api/audio-driven/chunked/ws/{session.session_id}") as ws:
        replies = []
        for chunk in chunks:
            await ws.send(chunk)
        while len(replies) < 11:  # 10 replies + speech_started forwarded from the session's bus
            replies.append(await next_event(ws))
    accepted = [r for r in replies if r["type"] == "accepted"]
    assert [r["seq"] for r in accepted] == list(range(10))
    assert [r["samples"] for r in accepted] == [480] * 10
    assert accepted[-1]["queued_seconds"] == pytest.approx(0.2)
    assert [r["type"] for r in replies].count("speech_started") == 1
    np.testing.assert_array_equal(np.concatenate(session.fed), np.frombuffer(b"".join(chunks), "<i2"))
    assert session.touches >= 10


async def test_ws_backpressure_names_refused_chunk_and_keeps_socket(server, session) -> None:
    session.max_queued_s = 1.0
    async with ws_connect(f"{server.ws}/api/audio-driven/chunked/ws/{session.session_id}") as ws:
        await ws.send(pcm_bytes(0.8))
        await ws.send(pcm_bytes(0.8))
        events = [await next_event(ws) for _ in range(3)]
        refused = next(e for e in events if e["type"] == "backpressure")
        assert refused["seq"] == 1 and refused["retry_after_seconds"] == 0.5
        assert refused["queued_seconds"] == pytest.approx(0.8)
        await ws.send(pcm_bytes(0.1))
        assert (await next_event(ws))["seq"] == 2
    assert [len(p) for p in session.fed] == [int(0.8 * RATE), int(0.1 * RATE)]


async def test_ws_bad_messages_get_error_events(server, session) -> None:
    async with ws_connect(f"{server.ws}/api/audio-driven/chunked/ws/{session.session_id}") as ws:
        await ws.send(b"\x01\x02\x03")
        odd = await next_event(ws)
        assert odd["type"] == "error" and "even number" in odd["message"]
        await ws.send(pcm_bytes(1.5))
        assert "limit is 1 s" in (await next_event(ws))["message"]
        await ws.send("not json")
        assert (await next_event(ws))["code"] == "ProtocolError"
        await ws.send('{"type":"keepalive"}')
        await ws.send(pcm_bytes(0.02))
        assert (await next_event(ws))["type"] == "accepted"  # the socket survived, keepalive is silent


async def test_ws_interrupt_and_final(server, session) -> None:
    async with ws_connect(f"{server.ws}/api/audio-driven/chunked/ws/{session.session_id}") as ws:
        await ws.send(pcm_bytes(0.5))
        await ws.send(json.dumps({"type": "interrupt"}))
        events = [await next_event(ws) for _ in range(4)]
        types = [e["type"] for e in events]
        assert {"accepted", "speech_started", "interrupted", "speech_ended"} == set(types)
        assert next(e for e in events if e["type"] == "interrupted")["dropped_seconds"] == 0.5
        assert session.queued_s == 0
        await ws.send(json.dumps({"type": "final"}))
        assert (await next_event(ws))["type"] == "final_accepted"
        await ws.send(pcm_bytes(0.1))
        after = await next_event(ws)
        assert after["type"] == "error" and after["code"] == "SessionFinishedError"


async def test_ws_closes_when_session_ends(server, session) -> None:
    async with ws_connect(f"{server.ws}/api/audio-driven/chunked/ws/{session.session_id}") as ws:
        await ws.send('{"type":"keepalive"}')
        await asyncio.sleep(0.05)
        session.close()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1000


async def test_unknown_session_everywhere(server) -> None:
    async with ws_connect(f"{server.ws}/api/audio-driven/chunked/ws/nope") as ws:
        event = await next_event(ws)
        assert event["type"] == "error" and "not found" in event["message"]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 4404
    async with httpx.AsyncClient(base_url=server.http) as client:
        assert (await client.post("/api/audio-driven/chunked/interrupt/nope")).status_code == 404
        assert (await client.get("/api/audio-driven/chunked/events/nope")).status_code == 404
        offer = {"sdp": "v=0\r\n", "type": "offer"}
        assert (await client.post("/api/audio-driven/chunked/webrtc/nope", json=offer)).status_code == 404


async def test_http_interrupt_and_sse_events(server, session) -> None:
    session.feed_pcm(np.zeros(RATE, np.int16), RATE)
    async with (
        httpx.AsyncClient(base_url=server.http, timeout=5) as client,
        client.stream("GET", f"/api/audio-driven/chunked/events/{session.session_id}") as sse,
    ):
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.headers["cache-control"] == "no-cache"
        lines = sse.aiter_lines()
        assert await anext(lines) == ": connected"
        reply = await client.post(f"/api/audio-driven/chunked/interrupt/{session.session_id}")
        assert reply.json() == {"status": "success", "session_id": session.session_id, "dropped_seconds": 1.0}
        record = [await anext(lines) for _ in range(4)]
        assert record[:2] == ["", "id: 1"]
        assert record[2] == "event: speech_ended"
        assert json.loads(record[3].removeprefix("data: "))["interrupted"] is True
        session.close()  # the stream ends with the session
        rest = [line async for line in lines]
        # the route publishes its own ``interrupted`` to every listener; nothing else follows
        assert [line for line in rest if line.startswith("event: ")] == ["event: interrupted"]
        assert all(not line or line.startswith((":", "event: ", "id: ", "data: ")) for line in rest)


async def test_webrtc_offer_answer_over_http(server, session, monkeypatch) -> None:
    allow_loopback_ice(monkeypatch)
    clock = SyntheticClock(session.fanout).start()
    client = ViewerClient()
    try:
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            sdp, sdp_type = await client.offer()
            bad = await http.post(f"/api/audio-driven/chunked/webrtc/{session.session_id}", json={"sdp": sdp})
            assert bad.status_code == 422
            answer = await http.post(
                f"/api/audio-driven/chunked/webrtc/{session.session_id}", json={"sdp": sdp, "type": sdp_type}
            )
            assert answer.status_code == 200, answer.text
        await client.accept(answer.json()["sdp"], answer.json()["type"])
        deadline = time.monotonic() + 10
        while len(client.video) < 10 or len(client.audio) < 10:
            assert time.monotonic() < deadline, "no media over the HTTP-negotiated connection"
            await asyncio.sleep(0.05)
    finally:
        await client.close()
        clock.stop()
    assert np.all(np.diff([p for p, _ in client.video[:10]]) % 3600 == 0)
