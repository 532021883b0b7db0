"""What a session must offer the real-time routes (the server adapts its session to this).

Why a port: the routes (WebSocket, SSE, WebRTC, interrupt) are written and tested without the
server's session class; the lead plugs in ``get_session`` returning an object of this shape.
Every method is called on the event loop and must not block (enqueue, don't decode or infer);
a method may be a coroutine function instead, the routes await whatever is awaitable.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, runtime_checkable

import numpy as np

from server.session.events import EventBus
from server.sinks.fanout import TickFanout


@runtime_checkable
class RealtimeSessionPort(Protocol):
    session_id: str
    sample_rate: int
    """The session's ``audio_sample_rate``: the rate of raw PCM sent over the WebSocket."""

    fanout: TickFanout
    """Published by the session clock every tick; closed when the session closes."""

    events: EventBus
    """The session publishes ``speech_started``/``speech_ended``/``error`` here (any thread)."""

    def feed_pcm(self, pcm: np.ndarray, sample_rate: int) -> float | Awaitable[float]:
        """Schedule speech (mono int16 at ``sample_rate``) after what is queued.

        Returns the seconds of speech queued ahead of the playhead after accepting it. Raises
        ``SpeechBacklogFullError`` (nothing accepted) when the bound would be exceeded, and the
        server's own error when the session is finished/closed.
        """
        ...

    def finalize(self) -> Awaitable[None] | None:
        """No more speech: play out what is queued, then complete (like ``is_final_chunk``)."""
        ...

    def interrupt(self) -> float | Awaitable[float]:
        """Barge-in: drop queued and in-flight speech; idle within 100 ms of stream time.

        Returns the seconds of speech dropped. Later ``feed_pcm`` speech plays normally.
        """
        ...

    def touch(self) -> None:
        """Record client activity (keepalive) so the session does not expire."""
        ...
