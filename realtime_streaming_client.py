"""Async Python client for facestream's sub-second path: PCM over a WebSocket, events back.

    import asyncio
    from realtime_streaming_client import AsyncRealtimeClient

    async def main(session_id: str, pcm16: bytes) -> None:
        async with AsyncRealtimeClient("http://127.0.0.1:9999", session_id, sample_rate=24000) as rt:
            await rt.stream(pcm16)           # 20 ms messages, paced in real time
            await rt.final()                 # play out what is queued, then the session completes
            async for event in rt.events():  # accepted / speech_started / speech_ended / complete …
                print(event)

Create the session first with ``ChunkedStreamingClient.init_session`` (or ``POST …/chunked/init``);
its ``audio_sample_rate`` is the rate of the PCM sent here. Pass its ``session_token`` as
``token`` (``AsyncRealtimeClient(url, sid, 24000, token=client.session_token)``) when the server
has API keys; it travels in the ``Authorization`` header of the WebSocket upgrade.
``interrupt()`` is barge-in: the avatar stops speaking within ~100 ms of stream time and drops
everything queued.

Backpressure: when the server's speech queue is full it refuses a message with a ``backpressure``
event instead of dropping it; ``stream`` then raises ``RealtimeBackpressureError`` naming the
refused message, so nothing is lost silently and the caller decides (wait ``retry_after`` and
resend from ``seq`` on, or drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import websockets

API = "/api/audio-driven/chunked"
EVENT_QUEUE = 1024


class RealtimeBackpressureError(RuntimeError):
    def __init__(self, seq: int, retry_after: float, message: str) -> None:
        super().__init__(f"audio message {seq} refused: {message}")
        self.seq = seq
        self.retry_after = retry_after


class AsyncRealtimeClient:
    """One WebSocket to one session. Events are queued (bounded: the oldest go first when a caller
    never reads them; the count is in ``events_dropped``)."""

    def __init__(
        self,
        server_url: str,
        session_id: str,
        sample_rate: int,
        *,
        message_ms: int = 20,
        token: str | None = None,
        api_key: str | None = None,
    ) -> None:
        """``token``: the session token from init (or ``api_key``: the key that created the session)."""
        base = server_url.rstrip("/")
        credential = token or api_key
        self._headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self.url = (
            base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + f"{API}/ws/{session_id}"
        )
        self.session_id = session_id
        self.sample_rate = sample_rate
        self.message_samples = max(1, sample_rate * message_ms // 1000)
        self.events_dropped = 0
        self.sent = 0
        self._ws: Any = None
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(EVENT_QUEUE)
        self._reader: asyncio.Task[None] | None = None
        self._refused: dict[str, Any] | None = None
        self._answered = 0  # binary messages the server answered (accepted or backpressure)
        self._answer = asyncio.Event()

    async def __aenter__(self) -> AsyncRealtimeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._ws = await websockets.connect(self.url, max_size=2**20, additional_headers=self._headers)
        self._reader = asyncio.create_task(self._read(), name="realtime-client-reader")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    # -- sending ---------------------------------------------------------------------------------
    async def send_pcm(self, pcm: bytes | np.ndarray) -> int:
        """One binary message (PCM16 mono at ``sample_rate``, ≤ 1 s); returns its ``seq``."""
        data = _as_pcm16_bytes(pcm)
        await self._ws.send(data)
        self.sent += 1
        return self.sent - 1

    async def stream(
        self, pcm: bytes | np.ndarray, *, realtime: bool = True, lead_s: float = 0.1, wait: bool = True
    ) -> int:
        """Send ``pcm`` as ``message_ms`` messages; ``realtime`` paces them like a live source
        (``lead_s`` ahead); ``wait``: return once the server answered every message. Raises
        RealtimeBackpressureError when the server refuses one. Returns the messages sent."""
        data = _as_pcm16_bytes(pcm)
        step = self.message_samples * 2
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        for offset in range(0, len(data), step):
            self._raise_refused()
            if realtime:
                due = start + offset / 2 / self.sample_rate - lead_s
                await asyncio.sleep(max(0.0, due - loop.time()))
            await self.send_pcm(data[offset : offset + step])
            sent += 1
        if wait:
            await self.answered()
        return sent

    async def answered(self, timeout: float = 30.0) -> None:
        """Wait until the server answered every message sent so far; raises
        RealtimeBackpressureError if it refused one (the first refused is named)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._answered < self.sent:
            self._answer.clear()
            await asyncio.wait_for(self._answer.wait(), max(0.0, deadline - loop.time()))
        self._raise_refused()

    def _raise_refused(self) -> None:
        if self._refused is not None:
            refused, self._refused = self._refused, None
            raise RealtimeBackpressureError(
                int(refused["seq"]), float(refused["retry_after_seconds"]), str(refused["message"])
            )

    async def final(self) -> None:
        await self._ws.send(json.dumps({"type": "final"}))

    async def interrupt(self) -> None:
        await self._ws.send(json.dumps({"type": "interrupt"}))

    async def keepalive(self) -> None:
        await self._ws.send(json.dumps({"type": "keepalive"}))

    # -- receiving -------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Server events in order until the socket closes (the session ended or ``close()``)."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def wait_for(self, event_type: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next event of ``event_type`` (earlier events of other types are consumed)."""

        async def find() -> dict[str, Any]:
            async for event in self.events():
                if event["type"] == event_type:
                    return event
            raise ConnectionError(f"the socket closed before a {event_type!r} event")

        return await asyncio.wait_for(find(), timeout)

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, str):
                    self._offer(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        finally:
            self._offer(None)

    def _offer(self, event: dict[str, Any] | None) -> None:
        kind = event.get("type") if event is not None else None
        if kind == "backpressure" and int(event["seq"]) >= 0:  # seq -1: WebRTC microphone audio
            self._refused = self._refused or event
        if kind in ("accepted", "backpressure") or (
            kind == "error" and "audio message" in event.get("message", "")
        ):
            self._answered += 1
            self._answer.set()
        if event is None:
            self._answered = self.sent  # nothing more will come
            self._answer.set()
        while True:
            try:
                self._events.put_nowait(event)
                return
            except asyncio.QueueFull:
                self._events.get_nowait()
                self.events_dropped += 1


def _as_pcm16_bytes(pcm: bytes | np.ndarray) -> bytes:
    if isinstance(pcm, bytes | bytearray | memoryview):
        return bytes(pcm)
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        arr = (np.clip(arr.astype(np.float32), -1.0, 1.0) * 32767).astype(np.int16)
    return arr.astype("<i2").tobytes()
