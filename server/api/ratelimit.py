"""Per-client request rate limiting (HTTP and WebSocket upgrades), client addresses behind proxies,
and listener caps per session and per client.

Why per IP and only on the API: the API's POSTs are what costs (uploads, decode, face analysis),
and a single client hammering them must not starve the others; HLS and static GETs are left alone
because one NAT'ed audience polls playlists from one address. The client table is an LRU of at
most ``max_clients`` buckets, so a flood of spoofed or rotating addresses costs bounded memory
(an evicted client simply starts again with a full bucket). Refusals are 429 with ``Retry-After``
(whole seconds until a token is back). WebSocket upgrades on the API count like requests (refused
with an HTTP 429 before the handshake where the server supports it, else closed with 4429);
messages on an open socket have their own per-connection bucket (server.api.realtime).

Addresses: ``X-Forwarded-For`` is believed only when the peer is one of ``trusted_proxies``, and then
only up to the first hop that is not a trusted proxy (read from the right), so a client cannot pick
its own address by sending the header. Everyone else is keyed by the TCP peer address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator

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


class ProxyResolver:
    """The client address of a request: the TCP peer, or the forwarded one from trusted proxies."""

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        self._trusted = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    @staticmethod
    def is_loopback(address: str) -> bool:
        try:
            return ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False

    def address(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops: list[str] = []
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                hops += [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops[-32:]):  # rightmost = added by our proxy; stop at the first stranger
            if not self._is_trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # garbage from a trusted proxy's client: fall back to the proxy
        return peer


class RateLimitMiddleware:
    """429 + Retry-After for clients over their rate on paths starting with ``prefix`` (HTTP
    requests and WebSocket upgrades alike)."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: ClientRateLimiter,
        prefix: str = "/api/",
        resolver: ProxyResolver | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix
        self.resolver = resolver or ProxyResolver()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket") and scope.get("path", "").startswith(self.prefix):
            wait = self.limiter.acquire(self.resolver.address(scope))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                message = f"too many requests from this client; retry in {retry} s"
                if kind == "http":
                    await send_json_error(send, 429, message, {"Retry-After": str(retry)})
                else:
                    await refuse_websocket(scope, send, 429, message, {"Retry-After": str(retry)})
                return
        await self.app(scope, receive, send)


async def refuse_websocket(
    scope: Scope, send: Send, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    """Refuse a WebSocket upgrade before the handshake: an HTTP error response where the server
    offers the ``websocket.http.response`` extension (uvicorn does), else close code 4000+status."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await send_json_error(send, status, message, headers, prefix="websocket.")
    else:
        await send({"type": "websocket.close", "code": 4000 + status, "reason": message[:120]})


class ListenerLimits:
    """Counts open listeners (SSE streams, WebSockets) per session and per client, with caps.

    ``hold(session_id, client)`` is a context manager that holds one slot for the listener's
    life: beyond ``per_session`` → TooManyViewersError (503), beyond ``per_client`` →
    QuotaExceededError (429). Thread-safe; state is only the two counters.
    """

    def __init__(self, per_session: int, per_client: int) -> None:
        self.per_session = per_session
        self.per_client = per_client
        self._sessions: Counter[str] = Counter()
        self._clients: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, session_id: str, client: str) -> None:
        from server.errors import QuotaExceededError, TooManyViewersError

        with self._lock:
            if self._sessions[session_id] >= self.per_session:
                raise TooManyViewersError(f"this session already has {self.per_session} listeners")
            if self._clients[client] >= self.per_client:
                raise QuotaExceededError(
                    f"this client already holds {self.per_client} listeners", retry_after=5
                )
            self._sessions[session_id] += 1
            self._clients[client] += 1

    def release(self, session_id: str, client: str) -> None:
        with self._lock:
            for table, key in ((self._sessions, session_id), (self._clients, client)):
                table[key] -= 1
                if table[key] <= 0:
                    del table[key]

    @contextlib.contextmanager
    def hold(self, session_id: str, client: str) -> Iterator[None]:
        self.acquire(session_id, client)
        try:
            yield
        finally:
            self.release(session_id, client)

    def of_session(self, session_id: str) -> int:
        with self._lock:
            return self._sessions.get(session_id, 0)

    def of_client(self, client: str) -> int:
        with self._lock:
            return self._clients.get(client, 0)


class MessageBucket:
    """One connection's message budget: ``rate``/s refill, ``burst`` capacity (no lock: one task)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
