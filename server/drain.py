"""Draining a node for a deploy: take no new sessions, let live ones finish, then leave.

Why a drain and not just SIGTERM: SIGTERM ends every live stream within seconds (its playlists get
``#EXT-X-ENDLIST``); a drain lets them play to their natural end. While draining, ``/ready``
answers 503 (the balancer's "new sessions" check, deploy/haproxy/haproxy.cfg, stops placing
sessions here) but ``/health`` stays 200, so every request of a live session keeps reaching it.
The node leaves when no session is live or at the deadline, whichever comes first, through the
app's ``on_drained`` hook (the CLI's: a graceful uvicorn exit, exactly as on SIGTERM).

Started by ``SIGUSR1`` (``facestream serve``; Docker: ``stop_signal: SIGUSR1``) or by
``POST /admin/drain`` from the node's own host (server.api.ops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("facestream.drain")

POLL_S = 0.2
"""How often the drain looks at the live-session count: ends within this of the last session."""


class Admission(Protocol):
    """The part of the SessionRegistry a drain needs."""

    draining: bool

    def live_count(self) -> int: ...


@dataclass(frozen=True)
class DrainStatus:
    draining: bool
    live_sessions: int
    seconds_left: float | None
    """Until the deadline (None when not draining)."""

    def as_dict(self) -> dict[str, object]:
        left = None if self.seconds_left is None else round(self.seconds_left, 1)
        return {"draining": self.draining, "live_sessions": self.live_sessions, "seconds_left": left}


def drain_finished(live_sessions: int, now: float, deadline: float) -> bool:
    """The drain is over once nothing is live or the deadline has passed."""
    return live_sessions == 0 or now >= deadline


class Drain:
    """One node's drain; owned by the app (``app.state.drain``), its task stopped by ``close``."""

    def __init__(
        self,
        admission: Admission,
        on_drained: Callable[[], None] | None,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = POLL_S,
    ) -> None:
        self._admission = admission
        self._on_drained = on_drained
        self._clock = clock
        self._poll_s = poll_s
        self._deadline: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    @property
    def draining(self) -> bool:
        return self._deadline is not None

    def start(self, timeout_s: float) -> DrainStatus:
        """Begin draining (call on the event loop). Again while draining: the deadline can only come
        closer (a second, impatient operator shortens it; nothing extends a deadline once given)."""
        deadline = self._clock() + max(0.0, timeout_s)
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline
        self._admission.draining = True
        if self._task is None:
            live = self._admission.live_count()
            log.info("draining: no new sessions; %d live, deadline in %.0f s", live, timeout_s)
            self._task = asyncio.create_task(self._run(), name="node-drain")
        return self.status()

    def status(self) -> DrainStatus:
        left = None if self._deadline is None else max(0.0, self._deadline - self._clock())
        return DrainStatus(self.draining, self._admission.live_count(), left)

    async def _run(self) -> None:
        while not drain_finished(self._admission.live_count(), self._clock(), self._deadline_now()):
            await asyncio.sleep(self._poll_s)
        live = self._admission.live_count()
        if live:
            log.warning("drain deadline reached with %d live sessions: they end now", live)
        else:
            log.info("drained: no live sessions left")
        self.finished.set()
        if self._on_drained is not None:
            self._on_drained()

    def _deadline_now(self) -> float:
        return self._clock() if self._deadline is None else self._deadline

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
