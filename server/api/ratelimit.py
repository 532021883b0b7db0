"""Per-client request rate limiting: a token bucket per client IP, in a bounded table.

Why per IP and only on the API: the API's POSTs are what costs (uploads, decode, face analysis),
and a single client hammering them must not starve the others; HLS and static GETs are left alone
because one NAT'ed audience polls playlists from one address. The client table is an LRU of at
most ``max_clients`` buckets, so a flood of spoofed or rotating addresses costs bounded memory
(an evicted client simply starts again with a full bucket). Refusals are 429 with ``Retry-After``
(whole seconds until a token is back).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from server.api.guards import ASGIApp, Receive, Scope, Send, send_json_error


class ClientRateLimiter:
    """Token buckets keyed by client: ``rate`` tokens/s refill, ``burst`` capacity, LRU-bounded."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_clients >= 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)
        self._lock = threading.Lock()
        self.refused = 0

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
                self.refused += 1
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


class RateLimitMiddleware:
    """429 + Retry-After for clients over their rate on paths starting with ``prefix``."""

    def __init__(self, app: ASGIApp, limiter: ClientRateLimiter, prefix: str = "/api/") -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(self.prefix):
            client = scope.get("client")
            wait = self.limiter.acquire(client[0] if client else "unknown")
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await send_json_error(
                    send, 429, f"too many requests from this client; retry in {retry} s",
                    {"Retry-After": str(retry)},
                )  # fmt: skip
                return
        await self.app(scope, receive, send)
