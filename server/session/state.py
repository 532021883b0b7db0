"""The session lifecycle as an enum with enforced legal transitions.

created ──► streaming ──► draining ──► complete
   └──────────┴─────────────┴──────────────┴──► failed | closed

``streaming``: the clock runs and speech is accepted. ``draining``: the final chunk arrived; queued
speech plays out, no more speech accepted. ``complete``: the playlist ended. ``failed``: an
unrecoverable error (the message is kept). ``closed``: deleted, expired or shut down.
"""

from __future__ import annotations

import enum
import threading

from server.errors import IllegalTransitionError


class SessionState(enum.StrEnum):
    CREATED = "created"
    STREAMING = "streaming"
    DRAINING = "draining"
    COMPLETE = "complete"
    FAILED = "failed"
    CLOSED = "closed"

    @property
    def accepts_speech(self) -> bool:
        return self in (SessionState.CREATED, SessionState.STREAMING)

    @property
    def terminal(self) -> bool:
        return self in (SessionState.COMPLETE, SessionState.FAILED, SessionState.CLOSED)


_LEGAL: dict[SessionState, frozenset[SessionState]] = {
    SessionState.CREATED: frozenset({SessionState.STREAMING, SessionState.FAILED, SessionState.CLOSED}),
    SessionState.STREAMING: frozenset({SessionState.DRAINING, SessionState.FAILED, SessionState.CLOSED}),
    SessionState.DRAINING: frozenset({SessionState.COMPLETE, SessionState.FAILED, SessionState.CLOSED}),
    SessionState.COMPLETE: frozenset({SessionState.CLOSED}),
    SessionState.FAILED: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


def can_transition(src: SessionState, dst: SessionState) -> bool:
    return dst in _LEGAL[src]


class StateMachine:
    """Thread-safe holder of one session's state."""

    def __init__(self) -> None:
        self._state = SessionState.CREATED
        self._lock = threading.Lock()

    @property
    def state(self) -> SessionState:
        return self._state

    def to(self, dst: SessionState) -> SessionState:
        """Move to ``dst`` or raise IllegalTransitionError; returns the previous state."""
        with self._lock:
            src = self._state
            if not can_transition(src, dst):
                raise IllegalTransitionError(f"session cannot go from {src} to {dst}")
            self._state = dst
            return src

    def try_to(self, dst: SessionState) -> bool:
        """Move to ``dst`` if legal; False (and no change) otherwise."""
        with self._lock:
            if not can_transition(self._state, dst):
                return False
            self._state = dst
            return True
