"""RemoteAvatar: the avatar rendered by a facestream server, for agents that should not render.

Speech goes up the server's real-time ingest (``WS /api/audio-driven/chunked/ws/{id}``, PCM16 at
the session's ``audio_sample_rate``; ``{"type": "interrupt"}`` is barge-in), and the session comes
back over WebRTC (``POST …/webrtc/{id}``, a receive-only aiortc peer): 25 fps video and 48 kHz
audio, paced and lip-synced by the server's clock. ``frames()`` turns that into the same
``AvatarFrame`` stream the in-process runtime yields: each received video frame with the 40 ms of
audio of the same tick, ``audio=None`` where the server sends digital silence (idle). The server
stamps both tracks from its timeline (video pts = frame × 3600 at 90 kHz, audio pts = sample at
48 kHz) and aiortc's receiver counts both from the first packet, so frame k pairs with audio
samples [k × 1920, (k + 1) × 1920): a video frame waits for its audio until the next video frame
arrives, then goes with what came.

Latency: the server's scheduling lead (``latency_lead_ms``, 200 ms by default) + RTP and the
receive jitter buffer; interruption: the server cuts speech a few frames after its playhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import soxr
import websockets

from facestream.avatar import AvatarFrame
from models.types import FPS
from server.session.audio.resample import StreamResampler

API = "/api/audio-driven/chunked"
VIDEO_QUEUE = 50  # 2 s of frames; a stalled consumer drops the oldest (live video, not a backlog)
VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000  # the server's WebRTC audio
AUDIO_PER_FRAME = AUDIO_RATE // FPS
MESSAGE_S = 0.5  # speech is sent in messages of at most this long (the server takes up to 1 s)


class RemoteAvatar:
    """An ``AvatarBackend`` over one facestream server session."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        session_id: str,
        ws: websockets.ClientConnection,
        pc: object,
        sample_rate: int,
        output_rate: int,
    ) -> None:
        self._http = http
        self.session_id = session_id
        self._ws = ws
        self._pc = pc
        self.sample_rate = sample_rate
        self.output_rate = output_rate
        self._to_session = StreamResampler(sample_rate)
        self._video: asyncio.Queue = asyncio.Queue(VIDEO_QUEUE)  # (index, image, audio | None)
        self._pending: dict[int, np.ndarray] = {}  # video frames waiting for their audio
        self._audio: dict[int, np.ndarray] = {}  # frame index -> 48 kHz mono int16 received so far
        self._speech_until = 0.0  # wall time the speech sent so far should have finished playing
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self.events: list[dict] = []  # the server's last events (bounded), for diagnostics

    @classmethod
    async def open(
        cls,
        server_url: str,
        image: Path | bytes,
        *,
        sample_rate: int = 24_000,
        output_rate: int = 24_000,
        api_key: str | None = None,
        allow_loopback: bool = False,
    ) -> RemoteAvatar:
        """Create a session from ``image``, connect the ingest and a receive-only WebRTC peer.
        ``allow_loopback``: gather 127.0.0.1 ICE candidates (a server on this host, tests)."""
        from aiortc import RTCPeerConnection, RTCSessionDescription

        if allow_loopback:
            from server.sinks.webrtc.loopback import install_loopback_host_candidates

            install_loopback_host_candidates()
        data = image.read_bytes() if isinstance(image, Path) else image
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        http = httpx.AsyncClient(base_url=server_url.rstrip("/"), headers=headers, timeout=30.0)
        try:
            r = await http.post(
                f"{API}/init",
                files={"image": ("face.jpg", data)},
                data={"audio_sample_rate": str(sample_rate)},
            )
            r.raise_for_status()
            body = r.json()
            sid = body["session_id"]
            token = body.get("session_token")
            auth = {"Authorization": f"Bearer {token}"} if token else headers
            ws_url = str(http.base_url).replace("http://", "ws://", 1).replace("https://", "wss://", 1)
            ws = await websockets.connect(f"{ws_url.rstrip('/')}{API}/ws/{sid}", additional_headers=auth)
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            self = cls(http, sid, ws, pc, sample_rate, output_rate)
            pc.on("track", self._on_track)
            await pc.setLocalDescription(await pc.createOffer())
            answer = await http.post(
                f"{API}/webrtc/{sid}",
                json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type},
                headers=auth,
            )
            answer.raise_for_status()
            await pc.setRemoteDescription(RTCSessionDescription(**answer.json()))
            self._tasks.append(asyncio.create_task(self._read_events(), name="facestream-remote-events"))
            return self
        except BaseException:
            await http.aclose()
            raise

    # -- AvatarBackend --------------------------------------------------------------------------
    async def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        samples = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
        out = self._to_session.process(samples, sample_rate)
        step = int(self.sample_rate * MESSAGE_S)
        for i in range(0, len(out), step):
            piece = (np.clip(out[i : i + step], -1, 1) * 32767).astype(np.int16)
            await self._ws.send(piece.tobytes())
        now = time.monotonic()
        self._speech_until = max(self._speech_until, now) + len(samples) / sample_rate

    async def end_segment(self) -> None:
        """The server's timeline joins speech and silence itself; only the resampler's tail goes."""
        tail = self._to_session.flush()
        if len(tail):
            await self._ws.send((np.clip(tail, -1, 1) * 32767).astype(np.int16).tobytes())

    async def clear(self) -> float:
        await self._ws.send(json.dumps({"type": "interrupt"}))
        left = max(0.0, self._speech_until - time.monotonic())
        self._speech_until = 0.0
        return left

    async def status(self) -> tuple[float, int]:
        return max(0.0, self._speech_until - time.monotonic()), 0

    async def frames(self) -> AsyncIterator[AvatarFrame]:
        base: int | None = None
        while not self._closed:
            item = await self._video.get()
            if item is None:
                return
            index, image, audio = item
            base = index if base is None else base
            yield AvatarFrame(index - base, image, audio, self.output_rate, speech=audio is not None)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._video.put_nowait(None)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._pc.close()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await self._ws.close()
        with contextlib.suppress(Exception):
            await self._http.delete(f"{API}/session/{self.session_id}")
        await self._http.aclose()

    # -- receiving ------------------------------------------------------------------------------
    def _on_track(self, track: object) -> None:
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: object) -> None:
        from aiortc.mediastreams import MediaStreamError

        kind = track.kind  # type: ignore[attr-defined]
        while not self._closed:
            try:
                frame = await track.recv()  # type: ignore[attr-defined]
            except MediaStreamError:
                return
            if kind == "video":
                index = round(frame.pts * FPS / VIDEO_CLOCK)
                for old in sorted(k for k in self._pending if k < index):  # their audio is late
                    self._resolve(old)
                self._pending[index] = frame.to_ndarray(format="rgb24")
                if len(self._audio.get(index, ())) >= AUDIO_PER_FRAME:
                    self._resolve(index)
            else:
                pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1).astype(np.int16)
                index, offset = divmod(int(frame.pts), AUDIO_PER_FRAME)
                if offset == 0 or index in self._audio:  # a frame's audio starts at its first sample
                    self._audio[index] = np.concatenate([self._audio.get(index, np.zeros(0, np.int16)), pcm])
                if index in self._pending and len(self._audio[index]) >= AUDIO_PER_FRAME:
                    self._resolve(index)
                for old in [k for k in self._audio if k < index - 2 * FPS]:  # never paired: bounded
                    del self._audio[old]

    def _resolve(self, index: int) -> None:
        image = self._pending.pop(index)
        pcm = self._audio.pop(index, None)
        audio = None
        if pcm is not None and np.any(pcm):
            full = np.zeros(AUDIO_PER_FRAME, np.int16)
            full[: min(len(pcm), AUDIO_PER_FRAME)] = pcm[:AUDIO_PER_FRAME]
            out = full.astype(np.float32) / 32768.0
            if self.output_rate != AUDIO_RATE:  # per frame: exact lengths (frames may go missing)
                out = soxr.resample(out, AUDIO_RATE, self.output_rate)
            want = self.output_rate // FPS
            out = np.pad(out, (0, max(0, want - len(out))))[:want]
            audio = (np.clip(out, -1, 1) * 32767).astype(np.int16)
        if self._video.full():
            self._video.get_nowait()
        self._video.put_nowait((index, image, audio))

    async def _read_events(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self._ws:
                if isinstance(message, str):
                    self.events = [*self.events[-63:], json.loads(message)]
