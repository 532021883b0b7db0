"""Park coroutines on one event loop and wake them from any thread.

Why: the session clock runs in its own thread and must never block on viewers. Producers mutate
their state under ``lock`` and call ``notify_locked``; consumers re-check state under the same lock
and ``park`` when there is nothing to take, so no wake-up can be lost between check and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(None)


class LoopNotifier:
    """A lock plus the futures parked under it; bound to the first event loop that parks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._futures: list[asyncio.Future[None]] = []

    def park(self) -> asyncio.Future[None]:
        """Hold ``lock``; call on the loop thread. The future resolves at the next notify."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("all consumers of one notifier must run on the same event loop")
        # Waiters cancelled by timeouts leave done futures behind; prune so the list stays bounded.
        self._futures = [f for f in self._futures if not f.done()]
        fut: asyncio.Future[None] = loop.create_future()
        self._futures.append(fut)
        return fut

    def notify_locked(self) -> None:
        """Hold ``lock``; callable from any thread, O(1) and non-blocking for the caller."""
        if not self._futures or self._loop is None:
            return
        futures, self._futures = self._futures, []
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to wake
            self._loop.call_soon_threadsafe(_resolve_all, futures)
