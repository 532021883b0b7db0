"""Which client created which session, and the per-client live-session quota.

A client is an API key fingerprint (``key:…``) when keys are configured, else its address
(server.api.auth.Client). The quota is ``max_sessions_per_client``; its default (0) means half of
``max_sessions`` (at least 1) for every address except loopback ones: on loopback every local
client shares one address, so a cap there would only cap the machine's own user.

The table lives at the API edge (not in the registry) because ownership is an access-control
fact: the registry knows sessions, this knows who asked for them. Entries of sessions that are
gone or finished are pruned whenever a client is admitted, so the table stays as small as the
set of live sessions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from models.errors import FacestreamError
from server.api.auth import Client
from server.errors import QuotaExceededError
from server.session.registry import SessionRegistry
from server.settings import Settings


def session_quota(settings: Settings, client: Client) -> int | None:
    """How many live sessions ``client`` may hold (None: only ``max_sessions`` applies)."""
    if settings.max_sessions_per_client > 0:
        return settings.max_sessions_per_client
    if client.loopback:
        return None
    return max(1, settings.max_sessions // 2)


def liveness(registry: SessionRegistry) -> Callable[[str], bool | None]:
    """``session_id`` → True while live, False once finished, None once gone (for ``admit``)."""

    def state(session_id: str) -> bool | None:
        try:
            return not registry.get(session_id).state.terminal
        except FacestreamError:  # not found, or on a lost node
            return None

    return state


class SessionOwners:
    def __init__(self) -> None:
        self._owner: dict[str, str] = {}
        self._creating: dict[str, int] = {}
        self._lock = threading.Lock()

    def owner_of(self, session_id: str) -> str | None:
        with self._lock:
            return self._owner.get(session_id)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._owner.pop(session_id, None)

    @contextlib.contextmanager
    def admit(
        self, client: Client, quota: int | None, liveness: Callable[[str], bool | None]
    ) -> Iterator[Callable[[str], None]]:
        """Hold one of ``client``'s slots while its session is created; yields ``claim(session_id)``
        to record the result. QuotaExceededError (429) when the client already holds ``quota``.

        ``liveness(session_id)``: True while live, False once finished (still listed, still owned),
        None once gone (pruned here)."""
        with self._lock:
            states = {sid: liveness(sid) for sid in self._owner}
            for sid, state in states.items():
                if state is None:
                    del self._owner[sid]
            held = sum(1 for sid, o in self._owner.items() if o == client.id and states[sid])
            held += self._creating.get(client.id, 0)
            if quota is not None and held >= quota:
                raise QuotaExceededError(
                    f"this client already holds {quota} live sessions (max_sessions_per_client); "
                    "delete one or try again later",
                    retry_after=10,
                )
            self._creating[client.id] = self._creating.get(client.id, 0) + 1

        def claim(session_id: str) -> None:
            with self._lock:
                self._owner[session_id] = client.id

        try:
            yield claim
        finally:
            with self._lock:
                self._creating[client.id] -= 1
                if not self._creating[client.id]:
                    del self._creating[client.id]
