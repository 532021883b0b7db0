"""The event-loop side of one session's LL-HLS timeline: async blocking reload and a playlist cache.

Why not ``asyncio.to_thread(timeline.wait_until, …)``: that parks one worker thread per waiting
viewer, and with ten viewers per session the default pool is gone. Instead the packager thread
tells the loop about each change with one ``loop.call_soon_threadsafe`` (O(1) per part, however
many viewers), which swaps in a fresh ``asyncio.Event`` and sets the old one: every waiter wakes,
re-checks ``readiness`` (a dict-free O(1) check) and either answers or waits on the new event.
The playlist text is rendered at most once per timeline change and shared by every viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from hls.llhls.playlist import render_playlist
from hls.llhls.timeline import LlHlsTimeline, Readiness


class LlHlsLive:
    """Owned by the session's LL sink; bound to the server's loop on first use from a route."""

    def __init__(self, timeline: LlHlsTimeline) -> None:
        self.timeline = timeline
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._cache: tuple[int, bytes] | None = None
        self.renders = 0  # how many times the playlist was rendered (O(1) per change, not per viewer)

    def _bind(self) -> asyncio.Event:
        """Called on the loop: the first caller subscribes to the timeline's change notifications."""
        if self._changed is None:
            self._loop = asyncio.get_running_loop()
            self._changed = asyncio.Event()
            self.timeline.add_listener(self._notify)
        return self._changed

    def _notify(self) -> None:
        """Packager thread: hand the wake-up to the loop (never touches asyncio objects here)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        if old is not None:
            old.set()

    async def wait(self, msn: int, part: int | None, timeout: float) -> Readiness:
        """``readiness(msn, part)`` once it is not WAIT, or WAIT after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        changed = self._bind()
        while (state := self.timeline.readiness(msn, part)) is Readiness.WAIT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
            changed = self._changed or changed
        return state

    def playlist(self) -> bytes:
        """The current playlist, rendered once per timeline version."""
        version = self.timeline.version
        cached = self._cache
        if cached is not None and cached[0] == version:
            return cached[1]
        # version read before the snapshot: a change in between only makes the cache stale-safe
        text = render_playlist(self.timeline.snapshot()).encode()
        self._cache = (version, text)
        self.renders += 1
        return text

    def close(self) -> None:
        self.timeline.remove_listener(self._notify)
