"""FacestreamVideoGenerator under the SDK's AvatarRunner, fed through the SDK's
DataStreamAudioReceiver: the LiveKit avatar protocol end to end, minus the LiveKit server.

A fake room stands in for the server (none installs from the registries): it holds the agent as a
remote participant, hands the receiver byte-stream readers on ``lk.audio_stream`` (attributes
sample_rate / num_channels, as DataStreamAudioOutput sends them), dispatches the agent's
``lk.clear_buffer`` RPC to the handler the receiver registered, and records the avatar's
``perform_rpc`` calls (``lk.playback_started`` / ``lk.playback_finished``) and published tracks.
The runner's real AVSynchronizer, AudioSource and VideoSource run (livekit's native FFI); what it
pushes into them is recorded. Same script as the Pipecat probe; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from types import SimpleNamespace

import numpy as np
from livekit import rtc

from facestream.integrations.livekit import start_avatar_worker
from facestream.runtime import AvatarOptions
from tests.integration.agent_probes.common import SAMPLE_FACE, TTS_RATE, MouthMeter, rms, tts_voice

CHUNK = TTS_RATE // 50  # 20 ms
AGENT = "agent"


class FakeRemote:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        self.attributes: dict[str, str] = {}


class FakePublication:
    async def wait_for_subscription(self) -> None:
        return None


class FakeLocal:
    identity = "facestream-avatar"
    kind = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD

    def __init__(self) -> None:
        self._rpc_handlers: dict[str, object] = {}
        self.rpc_calls: list[dict] = []
        self.published: list[str] = []

    def register_rpc_method(self, name: str, handler: object) -> None:
        self._rpc_handlers[name] = handler

    async def perform_rpc(self, *, destination_identity: str, method: str, payload: str, **_: object) -> str:
        self.rpc_calls.append(
            {"t": time.monotonic(), "to": destination_identity, "method": method, "payload": payload}
        )
        return "ok"

    async def publish_track(self, track: object, options: object) -> FakePublication:
        self.published.append(type(track).__name__)
        return FakePublication()


class FakeRoom(rtc.EventEmitter):
    name = "facestream-test"

    def __init__(self) -> None:
        super().__init__()
        self.local_participant = FakeLocal()
        self.remote_participants = {AGENT: FakeRemote(AGENT)}
        self.stream_handlers: dict[str, object] = {}

    def isconnected(self) -> bool:
        return True

    def register_byte_stream_handler(self, topic: str, handler: object) -> None:
        self.stream_handlers[topic] = handler


class FakeReader:
    """One ``lk.audio_stream`` segment, as rtc.ByteStreamReader presents it."""

    def __init__(self, n: int) -> None:
        attrs = {"sample_rate": str(TTS_RATE), "num_channels": "1"}
        self.info = SimpleNamespace(attributes=attrs, stream_id=f"seg-{n}", topic="lk.audio_stream")
        self._q: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, pcm: np.ndarray) -> None:
        self._q.put_nowait(pcm.tobytes())

    def close(self) -> None:
        self._q.put_nowait(None)

    def __aiter__(self) -> FakeReader:
        return self

    async def __anext__(self) -> bytes:
        item = await self._q.get()
        if item is None:
            raise StopAsyncIteration
        return item


async def main() -> dict:
    room = FakeRoom()
    worker = await start_avatar_worker(room, AvatarOptions(image=SAMPLE_FACE), agent_identity=AGENT)
    sync = worker.runner.av_sync
    pushed: list[dict] = []
    original = sync.push

    async def record(frame: object, *args: object, **kw: object) -> None:
        now = time.monotonic()
        if isinstance(frame, rtc.VideoFrame):
            rgb = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3).copy()
            pushed.append({"kind": "video", "t": now, "rgb": rgb})
        elif isinstance(frame, rtc.AudioFrame):
            pcm = np.frombuffer(frame.data, np.int16)
            pushed.append(
                {"kind": "audio", "t": now, "rms": rms(pcm), "n": len(pcm), "rate": frame.sample_rate}
            )
        await original(frame, *args, **kw)

    sync.push = record  # type: ignore[method-assign]
    while not any(p["kind"] == "video" for p in pushed):
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.6)
    handler = room.stream_handlers["lk.audio_stream"]

    a = tts_voice(5.0)
    seg = FakeReader(0)
    handler(seg, AGENT)  # type: ignore[operator]
    a_pushed = time.monotonic()
    for i in range(0, len(a), TTS_RATE // 10):
        seg.send(a[i : i + TTS_RATE // 10])
    seg.close()
    await asyncio.sleep(len(a) / TTS_RATE + 1.0)

    b = tts_voice(4.0, offset_s=5.5)
    seg = FakeReader(1)
    handler(seg, AGENT)  # type: ignore[operator]
    start = time.monotonic()
    pushes = []
    interrupt_at = None
    for k, i in enumerate(range(0, len(b), CHUNK)):
        await asyncio.sleep(max(0.0, start + k * 0.02 - time.monotonic()))
        pushes.append(time.monotonic())
        seg.send(b[i : i + CHUNK])
        if k * 0.02 >= 2.25:
            interrupt_at = time.monotonic()
            clear = room.local_participant._rpc_handlers["lk.clear_buffer"]
            data = rtc.RpcInvocationData(
                request_id="1", caller_identity=AGENT, payload="", response_timeout=5.0
            )
            answer = clear(data)  # type: ignore[operator]
            break
    await asyncio.sleep(1.0)
    seg.close()
    await asyncio.sleep(0.2)
    await worker.aclose()

    # the generator yields each tick's audio (if any) right before its image
    images, audio, held = [], [], None
    for p in pushed:
        if p["kind"] == "audio":
            held = p
            continue
        pts = len(images) / 25
        images.append({"t": p["t"], "pts_s": pts, "audio": held is not None, "rgb": p["rgb"]})
        if held is not None:
            audio.append(
                {"t": held["t"], "pts_s": pts, "rms": held["rms"], "n": held["n"], "rate": held["rate"]}
            )
        held = None
    meter = MouthMeter()
    gaps = await asyncio.get_running_loop().run_in_executor(None, lambda: [meter(im["rgb"]) for im in images])
    for im, g in zip(images, gaps, strict=True):
        del im["rgb"]
        im["gap"] = g
    return {
        "a_seconds": len(a) / TTS_RATE,
        "a_pushed": a_pushed,
        "b_chunk_pushes": pushes,
        "b_chunk_s": CHUNK / TTS_RATE,
        "interrupt_sent": interrupt_at,
        "clear_answer": answer,
        "images": images,
        "audio": audio,
        "rpc_calls": room.local_participant.rpc_calls,
        "rpc_registered": sorted(room.local_participant._rpc_handlers),
        "published": room.local_participant.published,
    }


if __name__ == "__main__":
    out = asyncio.run(main())
    sys.stdout.write("PROBE-JSON " + json.dumps(out) + "\n")
