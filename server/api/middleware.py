"""Wires the protective edges into an app: auth state, origin checks, CORS, body limits, per-client
rate limit, error metrics.

Middleware order (outermost first): error counting (sees every refusal below it), rate limit
(refuses before anything is read; HTTP and WebSocket upgrades), origin guard (a foreign page may
not drive the API), key gate (with API keys, a creation request without a valid key is refused
before its upload is read or parsed), body limit (refuses while the body streams in), CORS, then
the app.

CORS: the API answers cross-origin calls only for the origins in ``settings.cors_origins`` (default
none: the page the server itself serves is same-origin and needs no CORS). HLS files, /health and
/ready stay readable from any origin (GET, no credentials): a player on another site can show a
stream whose viewer URL it was given, and the viewer URL is the capability, not the origin.

Why an origin guard besides CORS: CORS only hides *responses*; a ``multipart/form-data`` POST is a
"simple" request that a browser sends cross-origin without asking, and WebSockets are not covered
by CORS at all. So a state-changing request (any method but GET/HEAD/OPTIONS, and every WebSocket
upgrade) that carries an ``Origin`` which is neither this server's own nor allowed is refused (403)
before the app sees it. Clients that are not browsers send no ``Origin`` and are unaffected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection

from server.api.auth import Authenticator, install_log_redaction
from server.api.guards import (
    ASGIApp,
    BodyLimitMiddleware,
    Receive,
    Scope,
    Send,
    limit_for_path,
    send_json_error,
)
from server.api.owners import SessionOwners
from server.api.ratelimit import ClientRateLimiter, ListenerLimits, RateLimitMiddleware, refuse_websocket
from server.errors import AuthenticationError
from server.metrics import ErrorCountingMiddleware, ServerMetrics
from server.settings import Settings

PUBLIC_READ_PREFIXES = ("/hls/", "/health", "/ready")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_allowed(origin: str, host: str | None, allowed: list[str]) -> bool:
    """Same origin as the ``Host`` the request was sent to, or listed (``*`` = any)."""
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == (host or "").lower()


class OriginGuard:
    """403 for state-changing requests and WebSocket upgrades from a foreign ``Origin``."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        guarded = kind == "websocket" or (kind == "http" and scope.get("method") not in SAFE_METHODS)
        origin = _header(scope, b"origin") if guarded else None
        if origin is not None and not origin_allowed(origin, _header(scope, b"host"), self.allowed):
            message = f"requests from origin {origin[:100]!r} are not allowed (settings.cors_origins)"
            if kind == "http":
                await send_json_error(send, 403, message)
            else:
                await refuse_websocket(scope, send, 403, message)
            return
        await self.app(scope, receive, send)


CREATION_PATHS = frozenset(
    {"/api/audio-driven", "/api/audio-driven/stream", "/api/audio-driven/chunked/init"}
)


class KeyGate:
    """401 for creation requests without a valid API key, before their body is read.

    The routes check the key too (``auth.client_of``); this only saves parsing a 20 MB multipart
    upload for a request that is refused anyway."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.auth.keys_configured
            and scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path", "") in CREATION_PATHS
        ):
            try:
                self.auth.client(HTTPConnection(scope))
            except AuthenticationError as exc:
                await send_json_error(send, 401, str(exc), {"WWW-Authenticate": "Bearer"})
                return
        await self.app(scope, receive, send)


class SplitCors:
    """Open read-only CORS for the public paths, the allow-list for everything else."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.public = CORSMiddleware(
            app, allow_origins=["*"], allow_methods=["GET", "HEAD"], allow_headers=["*"]
        )
        self.api = CORSMiddleware(
            app,
            allow_origins=allowed,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["Retry-After", "X-Render-Frames", "X-Render-Seconds", "X-Render-Speed"],
            allow_credentials=False,  # credentials travel in Authorization, never cookies
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        public = scope["type"] == "http" and scope.get("path", "").startswith(PUBLIC_READ_PREFIXES)
        await (self.public if public else self.api)(scope, receive, send)


def install_middleware(app: FastAPI, settings: Settings) -> ServerMetrics:
    """Add the middlewares and ``app.state`` (metrics, auth, owners, listeners); returns the metrics."""
    metrics = ServerMetrics(node=settings.node_id)
    app.state.metrics = metrics
    app.state.shutting_down = False
    auth = Authenticator.for_settings(settings)
    app.state.auth = auth
    app.state.owners = SessionOwners()
    app.state.listeners = ListenerLimits(
        settings.max_listeners_per_session, settings.max_listeners_per_client
    )
    install_log_redaction()
    app.add_middleware(SplitCors, allowed=list(settings.cors_origins))
    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for_path(settings))
    app.add_middleware(KeyGate, auth=auth)
    app.add_middleware(OriginGuard, allowed=list(settings.cors_origins))
    if settings.rate_limit_per_s > 0:
        limiter = ClientRateLimiter(
            settings.rate_limit_per_s, settings.rate_limit_burst, settings.rate_limit_clients
        )
        app.state.rate_limiter = limiter
        app.add_middleware(RateLimitMiddleware, limiter=limiter, resolver=auth.proxies)
    app.add_middleware(ErrorCountingMiddleware, metrics=metrics)  # added last = outermost
    return metrics
