"""HTTP/WebSocket edges of the sub-second path, reaching sessions only through ``RealtimeSessionPort``.

``build_realtime_router(get_session, gateway)`` returns an ``APIRouter`` with:

* ``WS   /api/audio-driven/chunked/ws/{session_id}`` — PCM in, control in, events out
  (see ``protocol``); the socket ends when the session's event bus closes;
* ``POST /api/audio-driven/chunked/interrupt/{session_id}`` → ``{"status","session_id","dropped_seconds"}``;
* ``GET  /api/audio-driven/chunked/events/{session_id}`` — the same events as Server-Sent Events;
* ``POST /api/audio-driven/chunked/webrtc/{session_id}`` — ``{"sdp","type"}`` offer → answer.

HTTP routes let domain errors (from ``get_session`` or the session) propagate to the app's one
exception handler; on the WebSocket, errors after the handshake become ``error`` events, and a
session that cannot be found closes the socket with code 4000 + HTTP status.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.websockets import WebSocketState

from models.errors import FacestreamError
from server.api import auth, protocol
from server.api.ratelimit import ListenerLimits, MessageBucket
from server.errors import SpeechBacklogFullError, close_code_for
from server.session import events as ev
from server.session.events import EventBusClosed, EventListener
from server.session.realtime_port import RealtimeSessionPort
from server.sinks.webrtc.gateway import MAX_SDP_CHARS, WebRtcGateway, offer_sends_audio

log = logging.getLogger(__name__)

PREFIX = "/api/audio-driven/chunked"
T = TypeVar("T")
SessionGetter = Callable[[str], RealtimeSessionPort | Awaitable[RealtimeSessionPort]]


@dataclass(frozen=True, slots=True)
class RealtimeLimits:
    max_chunk_seconds: float = 1.0
    sse_keepalive_s: float = 15.0
    ws_messages_per_s: float = 0.0  # per connection; 0 = unlimited (burst: 2 s worth)


class WebRtcOffer(BaseModel):
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: str = Field(min_length=1, max_length=16)


def listeners_of(app: Any) -> ListenerLimits:
    """The app's listener caps (server.api.middleware installs them); unbounded for bare apps."""
    try:
        limits = app.state.listeners
    except AttributeError:  # an app without server.api.middleware (router tests)
        limits = app.state.listeners = ListenerLimits(1 << 30, 1 << 30)
    if not isinstance(limits, ListenerLimits):
        raise TypeError("app.state.listeners must be a server.api.ratelimit.ListenerLimits")
    return limits


def _client_address(conn: Request | WebSocket) -> str:
    return auth.authenticator_of(conn.scope["app"]).proxies.address(conn.scope)


async def _resolve(value: T | Awaitable[T]) -> T:
    return await value if inspect.isawaitable(value) else value


def build_realtime_router(
    get_session: SessionGetter,
    gateway: WebRtcGateway | Callable[[], WebRtcGateway],
    *,
    limits: RealtimeLimits | None = None,

) -> APIRouter:
    """``get_session(id)`` returns the session's port or raises the server's not-found error.

    ``gateway`` may be a callable returning it, for apps that create the gateway in their lifespan
    (after the routes are declared)."""
    limits = limits or RealtimeLimits()
    get_gateway = gateway if callable(gateway) and not isinstance(gateway, WebRtcGateway) else lambda: gateway
    router = APIRouter()

    @router.websocket(PREFIX + "/ws/{session_id}")
    async def ingest(websocket: WebSocket, session_id: str) -> None:
        await websocket.accept()
        listeners = listeners_of(websocket.app)
        client = _client_address(websocket)
        try:
            auth.authorize(websocket, session_id, auth.Access.CONTROL)  # 4401 / 4403
            port = await _resolve(get_session(session_id))
            listeners.acquire(port.session_id, client)  # 4503 per session / 4429 per client
        except (FacestreamError, LookupError, HTTPException) as exc:
            message = exc.detail if isinstance(exc, HTTPException) else str(exc)
            await websocket.send_text(ev.error(type(exc).__name__, str(message)).to_json())
            await websocket.close(code=close_code_for(exc))
            return
        try:
            await _IngestConnection(websocket, port, limits).run()
        finally:
            listeners.release(port.session_id, client)

    @router.post(PREFIX + "/interrupt/{session_id}")
    async def interrupt(request: Request, session_id: str) -> dict[str, Any]:
        auth.authorize(request, session_id, auth.Access.CONTROL)
        port = await _resolve(get_session(session_id))
        port.touch()
        dropped = await _resolve(port.interrupt())
        port.events.publish(ev.interrupted(dropped))
        return {"status": "success", "session_id": session_id, "dropped_seconds": round(dropped, 3)}

    @router.get(PREFIX + "/events/{session_id}")
    async def events(request: Request, session_id: str) -> StreamingResponse:
        auth.authorize(request, session_id, auth.Access.WATCH)
        port = await _resolve(get_session(session_id))
        listeners = listeners_of(request.app)
        client = _client_address(request)
        listeners.acquire(port.session_id, client)  # 503 per session / 429 per client
        try:
            listener = port.events.listen()
        except BaseException:
            listeners.release(port.session_id, client)
            raise
        return StreamingResponse(
            _sse_stream(listener, limits.sse_keepalive_s, lambda: listeners.release(port.session_id, client)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post(PREFIX + "/webrtc/{session_id}")
    async def webrtc(request: Request, session_id: str, offer: WebRtcOffer) -> dict[str, str]:
        mic = offer_sends_audio(offer.sdp)  # a microphone is control; receive-only is watching
        auth.authorize(request, session_id, auth.Access.CONTROL if mic else auth.Access.WATCH)
        port = await _resolve(get_session(session_id))
        if mic:
            port.touch()
        sdp, sdp_type = await get_gateway().answer(
            offer.sdp, offer.type, port.fanout, _mic_sink(port) if mic else None,
            client=_client_address(request),
        )  # fmt: skip
        return {"sdp": sdp, "type": sdp_type}

    return router


async def _sse_stream(
    listener: EventListener, keepalive_s: float, on_close: Callable[[], None] = lambda: None
) -> AsyncIterator[str]:
    event_id = 0
    try:
        yield ": connected\n\n"
        while True:
            try:
                event = await asyncio.wait_for(listener.recv(), keepalive_s)
            except TimeoutError:
                yield protocol.SSE_KEEPALIVE
                continue
            except EventBusClosed:
                return
            event_id += 1
            yield protocol.format_sse(event, event_id)
    finally:
        listener.close()
        on_close()


MAX_MIC_FEEDS_IN_FLIGHT = 8
"""Microphone batches being scheduled at once per WebRTC peer; more means the session is stuck."""


def _mic_sink(port: RealtimeSessionPort) -> Callable[[np.ndarray, int], None]:
    """Microphone audio from WebRTC → session speech; refusals are published, not swallowed."""

    def report(exc: BaseException) -> None:
        if isinstance(exc, SpeechBacklogFullError):
            port.events.publish(
                ev.backpressure(-1, exc.queued_seconds, exc.retry_after_s, f"microphone audio: {exc}")
            )
        elif isinstance(exc, FacestreamError):
            port.events.publish(ev.error(type(exc).__name__, f"microphone audio: {exc}"))
        else:
            log.error("microphone feed failed", exc_info=exc)

    in_flight: set[asyncio.Future[float]] = set()  # owned here; each settles in milliseconds

    def settled(task: asyncio.Future[float]) -> None:
        in_flight.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            report(error)

    def sink(pcm: np.ndarray, sample_rate: int) -> None:
        if len(in_flight) >= MAX_MIC_FEEDS_IN_FLIGHT:  # the session is not keeping up: say so, drop
            port.events.publish(
                ev.error("mic_backlog", "microphone audio dropped: earlier audio is still queued")
            )
            return
        try:
            result = port.feed_pcm(pcm, sample_rate)
        except Exception as exc:  # reported as an event; the mic keeps flowing
            report(exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            in_flight.add(task)
            task.add_done_callback(settled)

    return sink


class _IngestConnection:
    """One WebSocket: a receive loop (audio/control in) and a forwarder (session events out)."""

    def __init__(self, websocket: WebSocket, port: RealtimeSessionPort, limits: RealtimeLimits) -> None:
        self._ws = websocket
        self._port = port
        self._limits = limits
        self._send_lock = asyncio.Lock()
        self._seq = 0
        rate = limits.ws_messages_per_s
        self._budget = MessageBucket(rate, max(1.0, 2 * rate))

    async def run(self) -> None:
        try:
            listener = self._port.events.listen()
        except EventBusClosed:
            await self._send(ev.error("SessionClosed", "the session has ended"))
            await self._ws.close(code=1000)
            return
        forwarder = asyncio.create_task(self._forward(listener), name="ws-event-forwarder")
        try:
            await self._receive_loop()
        except WebSocketDisconnect:
            pass
        finally:
            forwarder.cancel()
            await asyncio.gather(forwarder, return_exceptions=True)
            listener.close()

    async def _receive_loop(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if not self._budget.take():  # a flood costs one close, not a decode per message
                await self._send(ev.error("RateLimited", "too many WebSocket messages; slow down"))
                async with self._send_lock:
                    await self._ws.close(code=4429)
                return
            self._port.touch()
            if message.get("bytes") is not None:
                await self._on_audio(message["bytes"])
            elif message.get("text") is not None:
                await self._on_control(message["text"])

    async def _on_audio(self, data: bytes) -> None:
        seq, self._seq = self._seq, self._seq + 1
        port = self._port
        try:
            pcm = protocol.decode_pcm16(
                data, port.sample_rate, max_chunk_seconds=self._limits.max_chunk_seconds
            )
            queued = await _resolve(port.feed_pcm(pcm, port.sample_rate))
        except SpeechBacklogFullError as exc:
            await self._send(ev.backpressure(seq, exc.queued_seconds, exc.retry_after_s, str(exc)))
            return
        except FacestreamError as exc:
            await self._send(ev.error(type(exc).__name__, f"audio message {seq}: {exc}"))
            return
        await self._send(ev.accepted(seq, len(pcm), queued))

    async def _on_control(self, text: str) -> None:
        try:
            control = protocol.parse_control(text)
            if control is protocol.Control.FINAL:
                await _resolve(self._port.finalize())
                # on the bus, not only this socket: SSE listeners and other sockets learn it too
                self._port.events.publish(ev.final_accepted())
            elif control is protocol.Control.INTERRUPT:
                dropped = await _resolve(self._port.interrupt())
                self._port.events.publish(ev.interrupted(dropped))
        except FacestreamError as exc:
            await self._send(ev.error(type(exc).__name__, str(exc)))

    async def _forward(self, listener: EventListener) -> None:
        try:
            while True:
                await self._send(await listener.recv())
        except EventBusClosed:
            async with self._send_lock:  # the session ended: so does its socket
                await self._ws.close(code=1000)

    async def _send(self, event: ev.ServerEvent) -> None:
        async with self._send_lock:
            if self._ws.application_state is WebSocketState.CONNECTED:  # not after our close
                await self._ws.send_text(event.to_json())
