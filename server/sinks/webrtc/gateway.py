"""SDP offer → answer for WebRTC viewers of session timelines; owns every peer connection it made.

One gateway can serve all sessions (pass each session's fan-out to ``answer``) or one session;
either way a viewer's peer connection is closed when its session's fan-out closes (even if the peer
never connected, so its tracks never ran), when ICE/DTLS fails, when it has not connected within
``connect_timeout_s`` of its answer, when its offer is rejected (whatever aiortc raised), or when
``close()`` is called, and the tasks it started are awaited. A watchdog task per viewer checks the
first three once a second; that is what frees the slot and the UDP sockets of a peer that went
silent. Viewers are capped per session and per client (the caller names the client).

If the offer sends audio (a microphone), the decoded audio goes to ``on_audio_in`` as mono int16
at 48 kHz — full duplex on one connection. Incoming video is drained and ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from server.errors import InvalidOfferError, QuotaExceededError, TooManyViewersError
from server.sinks.fanout import FanoutClosed, TickFanout
from server.sinks.webrtc.loopback import install_loopback_host_candidates
from server.sinks.webrtc.mic import MicPump, drain
from server.sinks.webrtc.tracks import FramePacer, SessionAudioTrack, SessionVideoTrack

log = logging.getLogger(__name__)

MAX_SDP_CHARS = 64_000


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server, e.g. ``IceServer(("turn:turn.example:3478",), "user", "secret")``."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class WebRtcConfig:
    ice_servers: tuple[IceServer, ...] = ()  # none: host candidates only (LAN)
    max_viewers_per_session: int = 8
    max_viewers_per_client: int = 8
    connect_timeout_s: float = 20.0
    watchdog_interval_s: float = 1.0
    mic_batch_ms: int = 40
    late_frame_grace_s: float = 0.02
    max_repeat_frames: int = 3
    allow_loopback: bool = False  # tests / single-host dev: also gather 127.0.0.1 (webrtc.loopback)


@dataclass(eq=False)
class _Viewer:
    pc: RTCPeerConnection
    fanout: TickFanout
    client: str = ""
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    mic: MicPump | None = None
    closing: asyncio.Task[None] | None = None


class WebRtcGateway:
    def __init__(self, config: WebRtcConfig | None = None) -> None:
        self.config = config or WebRtcConfig()
        if self.config.allow_loopback:
            install_loopback_host_candidates()
        self._viewers: set[_Viewer] = set()
        self._closed = False

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def viewers_of(self, fanout: TickFanout) -> int:
        return sum(1 for v in self._viewers if v.fanout is fanout)

    def viewers_of_client(self, client: str) -> int:
        return sum(1 for v in self._viewers if v.client == client)

    async def answer(
        self,
        offer_sdp: str,
        offer_type: str,
        fanout: TickFanout,
        on_audio_in: Callable[[np.ndarray, int], None] | None = None,
        client: str = "",
    ) -> tuple[str, str]:
        """Accept one viewer: returns the answer ``(sdp, type)`` with all ICE candidates in it.

        ``client`` (an address or key fingerprint) is counted against ``max_viewers_per_client``."""
        if self._closed:
            raise RuntimeError("gateway is closed")
        _check_offer(offer_sdp, offer_type)
        if self.viewers_of(fanout) >= self.config.max_viewers_per_session:
            raise TooManyViewersError(
                f"this session already has {self.config.max_viewers_per_session} WebRTC viewers"
            )
        if client and self.viewers_of_client(client) >= self.config.max_viewers_per_client:
            raise QuotaExceededError(
                f"this client already has {self.config.max_viewers_per_client} WebRTC viewers", retry_after=5
            )
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers()))
        viewer = _Viewer(pc, fanout, client)
        self._viewers.add(viewer)
        try:
            self._wire(viewer, on_audio_in)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type=offer_type))
            kinds = {t.kind for t in pc.getTransceivers()}
            if not kinds & {"audio", "video"}:
                raise InvalidOfferError("the offer has no audio or video media section")
            self._add_tracks(viewer, kinds)
            await pc.setLocalDescription(await pc.createAnswer())
        except InvalidOfferError:
            await self._close_viewer(viewer)
            raise
        except (ValueError, KeyError, IndexError, TypeError, FanoutClosed) as exc:
            await self._close_viewer(viewer)
            if isinstance(exc, FanoutClosed):
                raise
            raise InvalidOfferError(f"unusable SDP offer: {exc}") from exc
        except Exception as exc:  # aiortc rejects some offers with other errors: still the offer's fault
            await self._close_viewer(viewer)
            log.info("WebRTC offer rejected: %s: %s", type(exc).__name__, exc)
            raise InvalidOfferError(f"unusable SDP offer: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled (client gone): free the peer before unwinding
            await asyncio.shield(self._close_viewer(viewer))
            raise
        self._spawn(viewer, self._watch(viewer), "webrtc-watchdog")
        local = pc.localDescription
        return local.sdp, local.type

    async def close(self) -> None:
        """Close every peer connection and await every task this gateway started."""
        self._closed = True
        await asyncio.gather(*(self._close_viewer(v) for v in list(self._viewers)))

    # -- internals ------------------------------------------------------------------------------
    def _ice_servers(self) -> list[RTCIceServer]:
        return [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.config.ice_servers
        ]

    def _wire(self, viewer: _Viewer, on_audio_in: Callable[[np.ndarray, int], None] | None) -> None:
        pc = viewer.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and on_audio_in is not None and viewer.mic is None:
                viewer.mic = MicPump(track, on_audio_in, batch_ms=self.config.mic_batch_ms)
                self._spawn(viewer, viewer.mic.run(), "webrtc-mic")
            else:
                self._spawn(viewer, drain(track), "webrtc-drain")

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._schedule_close(viewer)

    def _add_tracks(self, viewer: _Viewer, kinds: set[str]) -> None:
        sub = viewer.fanout.subscribe()
        cfg = self.config
        if "video" in kinds:
            pacer = FramePacer(grace_s=cfg.late_frame_grace_s, max_fill=cfg.max_repeat_frames)
            viewer.tracks.append(SessionVideoTrack(sub, pacer=pacer))
        if "audio" in kinds:
            # Audio and video cursors are independent inside one subscription.
            viewer.tracks.append(SessionAudioTrack(sub))
        for track in viewer.tracks:
            viewer.pc.addTrack(track)
            # The fan-out closing ends the tracks; that ends the viewer.
            track.on("ended", lambda: self._schedule_close(viewer))

    async def _watch(self, viewer: _Viewer) -> None:
        """Close the viewer once its session ends, or if it has not connected in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.connect_timeout_s
        connected = False
        while viewer in self._viewers and viewer.closing is None:
            state = viewer.pc.connectionState
            connected = connected or state == "connected"
            if viewer.fanout.closed or state in ("failed", "closed") or (
                not connected and loop.time() > deadline
            ):
                self._schedule_close(viewer)
                return
            await asyncio.sleep(self.config.watchdog_interval_s)

    def _spawn(self, viewer: _Viewer, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        viewer.tasks.add(task)
        task.add_done_callback(viewer.tasks.discard)

    def _schedule_close(self, viewer: _Viewer) -> None:
        if viewer.closing is None and viewer in self._viewers:
            viewer.closing = asyncio.get_running_loop().create_task(
                self._close_viewer(viewer), name="webrtc-viewer-close"
            )

    async def _close_viewer(self, viewer: _Viewer) -> None:
        current = asyncio.current_task()
        if viewer.closing is not None and viewer.closing is not current:
            await asyncio.shield(viewer.closing)
            return
        self._viewers.discard(viewer)
        for track in viewer.tracks:
            track.stop()
        await viewer.pc.close()  # ends remote tracks, so the mic pump and drains return
        if viewer.tasks:
            await asyncio.wait(list(viewer.tasks), timeout=2.0)
        leftovers = list(viewer.tasks)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


def offer_sends_audio(sdp: str) -> bool:
    """Whether an offer sends audio (a microphone: control of the session, not only watching).

    Unparsable offers answer True so that they need the stronger right; the gateway refuses them."""
    if not sdp.startswith("v=0"):
        return True
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception:
        return True
    return any(m.kind == "audio" and m.direction in (None, "sendrecv", "sendonly") for m in parsed.media)


def _check_offer(sdp: str, sdp_type: str) -> None:
    if sdp_type != "offer":
        raise InvalidOfferError(f'expected an SDP of type "offer", got {sdp_type!r}')
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise InvalidOfferError("the SDP offer must start with 'v=0'")
    if len(sdp) > MAX_SDP_CHARS:
        raise InvalidOfferError(f"the SDP offer is longer than {MAX_SDP_CHARS} characters")
    try:
        # aiortc's parser signals malformed lines with ``assert``; parse here to turn that into a
        # clear client error before a peer connection exists.
        SessionDescription.parse(sdp)
    except (AssertionError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InvalidOfferError(f"unusable SDP offer: {exc or type(exc).__name__}") from exc
