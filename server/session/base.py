"""What every session kind offers the rest of the server: the ``SessionLike`` protocol.

Two kinds implement it: the live ``Session`` (a 25 fps clock fed by speech) and the unclocked
``ProgressiveSession`` (a whole clip rendered as fast as the machine allows). The registry, the
status route, the recording and ``/metrics`` see sessions only through this shape, so a new kind
cannot make one of them fail by lacking an attribute; the abilities only a live session has (speech
input, real-time fan-out) are reached by ``isinstance(session, Session)`` in one place
(``SessionRegistry.realtime``), which answers 409 for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from hls.base import TickSink
from models.types import Avatar
from server.session.state import SessionState


@dataclass(frozen=True, slots=True)
class SessionLoad:
    """Counters and queue depths of one session at one instant, for ``/metrics``.

    Counters are monotonic over the session's life; depths are what waits right now."""

    ticks_emitted: int = 0
    frames_rendered: int = 0
    stale_ticks: int = 0
    speech_frames_emitted: int = 0
    frames_queued: int = 0
    encoder_ticks_queued: int = 0
    queued_speech_seconds: float = 0.0
    lateness_p99_ms: float | None = None

    def counters(self) -> dict[str, int]:
        """The monotonic counters, by name (metrics keep them summed across deleted sessions)."""
        return {
            "ticks_emitted": self.ticks_emitted,
            "frames_rendered": self.frames_rendered,
            "stale_ticks": self.stale_ticks,
            "speech_frames_emitted": self.speech_frames_emitted,
        }


@runtime_checkable
class SessionLike(Protocol):
    session_id: str
    directory: Path
    avatar: Avatar

    @property
    def state(self) -> SessionState: ...

    @property
    def sink(self) -> TickSink: ...

    def status(self) -> dict[str, Any]: ...

    def load(self) -> SessionLoad: ...

    def touch(self) -> None: ...

    def idle_seconds(self, now: float | None = None) -> float: ...

    def close(self, end_playlist: bool = False) -> None: ...
