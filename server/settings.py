"""Server settings: environment (``FACESTREAM_*``) overridden by CLI flags, validated once at startup.

Nothing reads settings at import time; ``create_app(settings)`` receives a validated instance.
The default host is 127.0.0.1 (only this machine can connect); in Docker or to serve a LAN run
``facestream serve --host 0.0.0.0`` (or ``FACESTREAM_HOST=0.0.0.0``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.types import FPS

NODE_ID_RE = r"[a-z0-9_]{1,32}"
"""A node id (``Settings.node_id``): also a valid haproxy server name and a safe file-name part
(server.session.ids puts it in session ids)."""

SESSIONS_PER_CORE = 2
"""Placeholder admission (per core) until the start-up measurement replaces it: with
``max_sessions`` unset the app measures what this machine holds (``server.compute.capacity``,
logged with its derivation) before it accepts a connection. Override with --max-sessions."""


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
"""x264's presets (``FACESTREAM_HLS_PRESET``): anything else is refused at start-up, not by ffmpeg later."""


class IceServerSetting(BaseModel):
    """One STUN/TURN server, in the browser's ``RTCIceServer`` shape."""

    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("urls")
    @classmethod
    def _schemes(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"ICE server URL {url!r} must start with stun:, stuns:, turn: or turns:")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACESTREAM_", extra="forbid", validate_default=True)

    host: str = "127.0.0.1"
    port: int = Field(9999, ge=1, le=65535)
    storage_dir: Path = Path("data/sessions")
    static_dir: Path | None = Path(__file__).resolve().parent.parent / "static"
    engine: str = "cpu"
    weights_dir: Path | None = None
    device: str | None = None
    imtalker_dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    """IMTalker precision: model calls under autocast at this dtype; weights, ODE state and the
    carried context stay fp32 (errors against the fp32 vectors: tests/imtalker/test_half_precision.py)."""
    imtalker_compile: str | None = None
    """``torch.compile`` mode for the IMTalker renderer (e.g. ``max-autotune``); none by default."""
    imtalker_first_window_ms: float = Field(2000.0, ge=400, le=2000)
    """Length of a session's first IMTalker motion window: shorter gives the first frame sooner
    (later windows stay 2 s with the same 10-frame context)."""
    log_level: str = "info"
    debug_barcode: bool = False
    """Latency debugging (server.sinks.debug): stamp each frame's index as a barcode and log
    hand-off times, served at /api/debug/…; never on in production."""
    warm_up: bool = True
    """Analyse the sample face at startup so the first init does not pay for model loading."""

    max_sessions: int = Field(0, ge=0, description="0 = measured at start-up (server.compute.capacity)")
    _measure_admission: bool = PrivateAttr(False)
    admission_utilisation: float = Field(0.7, gt=0, le=1)
    """With ``max_sessions`` unset: the share of the cores that admitted sessions may use at their
    cost measured at start-up (server.compute.capacity); the rest is headroom for bursts and
    contention. Confirm it with benchmarks/server_capacity.py --client process on the target box."""
    inference_workers: int = Field(0, ge=0, description="0 = one per core")
    session_idle_timeout_s: float = Field(3000.0, gt=0)
    sweep_interval_s: float = Field(30.0, gt=0)
    heap_trim_interval_s: float = Field(60.0, ge=0)
    """Every this many seconds freed heap pages go back to the OS (server.memory; glibc's
    ``malloc_trim``), so a node's RSS follows its live data instead of each thread arena's
    high-water mark. 0 = never."""

    max_queued_speech_s: float = Field(120.0, gt=0)
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_audio_chunk_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_chunk_seconds: float = Field(60.0, gt=0)
    max_audio_file_bytes: int = Field(200 * 1024 * 1024, gt=0)
    """Whole-file uploads (``POST /api/audio-driven`` and ``/stream``)."""
    max_request_bytes: int = Field(1024 * 1024, gt=0)
    """Body limit of every other route (JSON, SDP offers); enforced while the body streams in."""
    max_image_pixels: int = Field(50_000_000, gt=0)
    """Checked from the image header before decoding (decompression bombs → 413)."""
    rate_limit_per_s: float = Field(30.0, ge=0)
    """API requests per second per client IP (token bucket refill); 0 disables rate limiting."""
    rate_limit_burst: int = Field(120, ge=1)
    rate_limit_clients: int = Field(10_000, ge=1)
    """Client buckets kept (LRU): bounds the limiter's memory under address floods."""
    min_free_storage_mb: float = Field(64.0, ge=0)
    """New sessions are refused (507) and /ready is 503 while the storage volume has less free."""
    max_sink_restarts: int = Field(3, ge=0)
    """Times a session's ffmpeg may be restarted (playlist continues after a discontinuity)
    before the session fails."""
    log_format: str = "text"
    """``text`` or ``json`` (one JSON object per line, with ``session_id`` when known)."""

    segment_seconds: float = Field(1.0, gt=0)
    live_window_segments: int = Field(6, ge=1)
    keep_all_segments: bool = False
    """True: an event playlist listing every segment, all kept on disk (replayable, recordable);
    False: a sliding live window of ``live_window_segments``, older segment files deleted, so a
    long session's disk use stays bounded."""
    recording_max_seconds: float = Field(1800.0, ge=0)
    """Session recordings (``GET …/session/{id}/recording.mp4``, server.sinks.recording): segment files
    stay on disk after leaving the live window, up to this many seconds per session (the oldest
    are deleted beyond it); 0 = no recording, files deleted as they leave the live window."""
    max_batch_audio_seconds: float = Field(600.0, gt=0)
    """Longest audio ``POST /api/audio-driven`` and ``/stream`` accept (413 beyond)."""
    max_batch_renders: int = Field(0, ge=0, description="0 = one per two cores (at least 1)")
    """Concurrent ``POST /api/audio-driven`` renders; beyond it → 503 + Retry-After."""
    batch_defer_s: float = Field(5.0, gt=0)
    """Whole-audio renders submit each step with this deadline offset, so live sessions' frames
    (due within ~0.3 s) always go first in the EDF executor, yet a render cannot starve forever."""
    hls_preset: X264Preset = "ultrafast"
    """x264 preset of every session's encoder (``threads 1``, ``tune zerolatency``, CRF 23).
    Measured at 512², 25 fps on a rendered talking head (benchmarks/encoder_settings.py: offline
    encode; the live cost, frames paced at 25 fps into the LL-HLS command, is ~1.5x that): superfast
    0.044 core offline / 0.070 live at 0.97 Mbit/s, PSNR 44.3 dB, SSIM 0.988; ultrafast 0.027 /
    0.040-0.051 at 1.50 Mbit/s, PSNR 44.7 dB, SSIM 0.985; veryfast 0.055 offline at 0.73 Mbit/s.
    In the server with 8 live sessions (benchmarks/server_capacity.py) each session's ffmpeg
    went from 0.068 to 0.053 core (~7 % of a session's whole cost, issue 14) at the same picture
    quality, for ~0.5 Mbit/s more per viewer. Whole-audio MP4 renders use it too."""
    hls_mode: str = "ll"
    """``ll`` (default): Low-Latency HLS (fMP4 parts, blocking playlist reload; server.api.llhls), a
    valid plain playlist too for players without LL support; ``ts``: MPEG-TS segments from ffmpeg's
    HLS muxer. Same ``/hls/<id>/playlist.m3u8``, one encoder per session and the same fault policy
    either way (a dead or stalled ffmpeg is restarted behind a discontinuity, capped by
    ``max_sink_restarts``, then the playlist ends; server.sinks.hls). Measured
    (benchmarks/glass_to_glass_llhls.py, hls.js in Chromium, 2 loaded cores): ll p50 0.72 s /
    p90 0.8-1.1 s, ts p50 1.4-2.0 s, same CPU per session (~0.2 core incl. rendering)."""
    llhls_part_seconds: float = Field(0.2, gt=0)
    """LL-HLS part length (whole frames; the segment a whole number of parts)."""
    llhls_block_timeout_s: float = Field(3.0, gt=0)
    """How long a blocking playlist/part request is held before 503 (the RFC: ~3 target durations)."""
    output_sample_rate: int = Field(48_000, ge=8_000, le=96_000)
    latency_lead_ms: float = Field(200.0, ge=40, le=5000)
    """A new utterance starts this far ahead of the playhead: engine lookahead (``cpu_lookahead_ms``,
    80 ms) + render margin (80 ms) + arrival jitter a real-time feed may have while its chunks still
    join the utterance gap-free (40 ms; tests/unit/server/test_clock_timeline.py). Glass-to-glass
    over WebRTC is this + ~30 ms tick phase + ~45-90 ms encode, RTP and the browser's jitter buffer
    (benchmarks/glass_to_glass_webrtc.py; 0.44-0.50 s at the former 400 ms with a 200 ms lookahead).
    Use 280-400 ms on a starved CPU (more render margin: fewer stale ticks) or a jittery link. An
    engine with more lookahead raises it itself (lead >= lookahead + margin + 1 frame)."""
    render_margin_ms: float = Field(80.0, ge=40, le=2000)
    """How far beyond the engine's lookahead the producer renders ahead of the clock: each frame's
    render budget (120 ms with the former 400 ms lead; the CPU engine renders a frame in ~10 ms,
    but on oversubscribed cores 80 ms measured 2-3x the stale ticks of 120 ms)."""
    cpu_lookahead_ms: float = Field(80.0, ge=40, le=400)
    """The CPU engine's right context in the server: frame n is rendered once audio to n + this is
    in. 200 ms (the engine's own default, used by ``facestream render``) gives the best visemes
    (benchmarks/motion_rtf.py: 0.76 agreement with an offline decode); 120 ms 0.73, 80 ms 0.65; the
    lip opening follows loudness the same (r ~0.81, tests/quality/test_lipsync.py). The live default,
    80 ms, is what fits an 80 ms render margin and 40 ms of jitter slack into a 200 ms lead."""
    engine_processes: int = Field(-1, ge=-1)
    """Worker processes the CPU engine's streams (audio→motion + render) run in: pocketsphinx and
    the render glue hold the GIL, which otherwise serialises every live session on one lock
    (models.engines.stream_workers). -1 (default): one per core on a multi-core machine, 0 on one
    core; 0 = in the server process."""

    node_id: str = Field("", pattern=rf"^(?:{NODE_ID_RE})?$")
    """This node's name behind a load balancer (deploy/haproxy): lowercase letters, digits and
    ``_``, equal to the node's ``server`` name in haproxy.cfg. Non-empty: every session id this node
    makes carries it (``<node_id>-<32 hex>``), so the balancer routes each request of a session to
    its node from the URL or the ``X-Facestream-Session`` header alone, and a request for a session
    whose node is gone gets a clear 410 from whichever node answers. Empty (default): one node,
    plain 32-hex ids."""
    drain_timeout_s: float = Field(600.0, ge=0)
    """Drain (``SIGUSR1`` or ``POST /admin/drain`` from this host): refuse new sessions, let live
    ones finish for at most this long, then shut down as on SIGTERM."""

    webrtc_ice_servers: list[IceServerSetting] = []
    """STUN/TURN servers for WebRTC viewers, as JSON, e.g.
    ``[{"urls": ["stun:stun.example.org:3478"]}]``; none are needed on a LAN."""
    webrtc_allow_loopback: bool = False
    """For tests and single-host development only: WebRTC also gathers 127.0.0.1 host candidates
    (aioice skips loopback), so a browser on this host can pair over loopback, e.g. inside a network
    namespace whose only interface is ``lo`` (server.sinks.webrtc.loopback). Leave off in production."""

    # -- security (README "Security"; server.api.auth, server.api.middleware) --------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    """API keys (env ``FACESTREAM_API_KEYS``, comma-separated; several at once, to rotate). With
    any set, creating sessions and renders needs one, and session routes need the session token
    (or the owning key); the server may then listen beyond loopback."""
    require_session_token: bool = False
    """Without API keys: still require the session token for control and the viewer token for
    watching (with keys this is always on)."""
    token_secret: SecretStr | None = None
    """HMAC secret of session/viewer tokens (≥ 16 chars); default: random per process."""
    viewer_token_ttl_s: float = Field(6 * 3600.0, gt=0)
    """Lifetime of the viewer token carried by ``hls_url``/``viewer_url``."""
    insecure: bool = False
    """Allow a non-loopback ``host`` with no API keys (``--insecure``): anyone who can reach the
    port controls every session. Without it the CLI refuses to start in that state."""
    max_sessions_per_client: int = Field(0, ge=0)
    """Live sessions one client may hold (env ``FACESTREAM_MAX_SESSIONS_PER_CLIENT``; a client is
    an API key, or an address without keys). 0 = half of ``max_sessions`` (at least 1), not
    applied to loopback addresses (every local client shares one address)."""
    max_finished_sessions: int = Field(32, ge=0)
    """Finished (complete/failed) sessions kept for status and replay; the oldest go beyond it."""
    finished_session_retention_s: float = Field(300.0, gt=0)
    """How long a finished session stays listed (from when it finished; GETs do not extend it)."""
    max_listeners_per_session: int = Field(8, ge=1)
    """SSE streams + WebSocket connections of one session; the same cap, counted apart, for its
    WebRTC viewers."""
    max_listeners_per_client: int = Field(16, ge=1)
    """The same, summed over all sessions, per client address (SSE/WS and WebRTC apart)."""
    webrtc_connect_timeout_s: float = Field(20.0, gt=0)
    """A WebRTC peer that has not connected this long after its answer is closed (slot freed)."""
    cors_origins: Annotated[list[str], NoDecode] = []
    """Origins (``https://app.example``) whose pages may call the API cross-origin (env
    comma-separated); default none: same origin only. ``*`` allows any (never with keys in a
    browser). HLS files and /health stay readable from any origin (GET, no credentials)."""
    trusted_proxies: Annotated[list[str], NoDecode] = []
    """Addresses/CIDRs of reverse proxies whose ``X-Forwarded-For`` is believed (env
    comma-separated); from anyone else the header is ignored."""
    header_timeout_s: float = Field(10.0, gt=0)
    """A connection must complete its request headers within this (slowloris)."""
    keep_alive_timeout_s: float = Field(5.0, gt=0)
    """Idle keep-alive connections are closed after this."""
    max_header_bytes: int = Field(64 * 1024, ge=4096)
    """Largest request head (request line + headers) accepted."""
    ws_messages_per_s: float = Field(400.0, ge=0)
    """WebSocket messages per second per connection (token bucket, burst 2 s); 0 = unlimited."""

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.lower()
        if v not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("log_level must be one of critical, error, warning, info, debug")
        return v

    @field_validator("api_keys", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str | SecretStr):
            text = v.get_secret_value() if isinstance(v, SecretStr) else v
            return [part.strip() for part in text.split(",") if part.strip()]
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {item!r} is not an address or CIDR") from None
        return v

    @field_validator("token_secret")
    @classmethod
    def _secret_length(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("token_secret must be at least 16 characters")
        return v

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, v: str) -> str:
        v = v.lower()
        if v not in {"text", "json"}:
            raise ValueError("log_format must be 'text' or 'json'")
        return v

    @field_validator("hls_mode")
    @classmethod
    def _hls_mode(cls, v: str) -> str:
        v = v.lower()
        if v not in {"ts", "ll"}:
            raise ValueError("hls_mode must be 'ts' or 'll'")
        return v

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        v = v.lower()
        if v not in {"cpu", "imtalker"}:
            raise ValueError("engine must be 'cpu' or 'imtalker'")
        return v

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        frames = self.segment_seconds * FPS
        if abs(frames - round(frames)) > 1e-6:
            raise ValueError("segment_seconds × 25 must be a whole number of frames")
        part = self.llhls_part_seconds * FPS
        if abs(part - round(part)) > 1e-6 or round(frames) % max(1, round(part)):
            raise ValueError("llhls_part_seconds must be whole frames and divide segment_seconds")
        if self.max_sessions == 0:
            self._measure_admission = True  # the app replaces the placeholder at start-up
            self.max_sessions = cpu_count() * SESSIONS_PER_CORE
        if self.inference_workers == 0:
            self.inference_workers = cpu_count()
        if self.max_batch_renders == 0:
            self.max_batch_renders = max(1, cpu_count() // 2)
        self.storage_dir = self.storage_dir.expanduser().resolve()
        return self

    @property
    def imtalker_first_window_frames(self) -> int:
        return round(self.imtalker_first_window_ms / 1000 * FPS)

    @property
    def cpu_engine_processes(self) -> int:
        if self.engine_processes >= 0:
            return self.engine_processes
        cores = cpu_count()
        return cores if cores > 1 else 0

    @property
    def measure_admission(self) -> bool:
        """True when ``max_sessions`` was not given: the app measures it at start-up (for the
        engine it creates itself; an injected engine — tests, benchmarks — keeps the placeholder)."""
        return self._measure_admission

    @property
    def render_margin_frames(self) -> int:
        return max(1, math.ceil(self.render_margin_ms / 1000 * FPS))

    @property
    def cpu_lookahead_frames(self) -> int:
        return max(1, round(self.cpu_lookahead_ms / 1000 * FPS))

    @property
    def lead_frames(self) -> int:
        return max(1, math.ceil(self.latency_lead_ms / 1000 * FPS))
