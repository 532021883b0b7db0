"""Who may do what: API keys (accounts), session tokens (control) and viewer tokens (watch only).

Model (like the hosted avatar APIs: an account key plus per-session tokens):

* **API keys** (``settings.api_keys``, env ``FACESTREAM_API_KEYS``, comma-separated, several at once
  so that a key can be rotated without downtime). When any is configured, creating a session
  (``chunked/init``, ``/stream``) or a whole-audio render needs one, and ``/metrics`` and the debug
  routes need one too. The key that created a session also controls it.
* **Session token** (``fss_…``, in the init answer as ``session_token``): controls exactly that
  session — feed, final, interrupt, delete, WebSocket ingest, WebRTC with a microphone, recording,
  preview — and watches it.
* **Viewer token** (``fsv_<expiry>.<signature>``, carried by ``hls_url`` / ``viewer_url``): can only
  watch that session (HLS files, status, SSE events, receive-only WebRTC) until it expires.

Both tokens are HMAC-SHA256 signatures over the session id with a per-process secret (or
``token_secret``), so nothing is stored and nothing can be forged without the secret; every
comparison is ``hmac.compare_digest`` and an API key is checked against every configured key
(no early exit). Tokens and keys never reach logs or metrics: clients are identified by a key
*fingerprint* (``key:<8 hex>``) or their address, and ``redact`` scrubs tokens from access logs
(the HLS viewer token is a path segment, see below).

When is it enforced? ``Authenticator.active`` is true when API keys are configured or
``require_session_token`` is on. With neither (the default on loopback), the published curl flow
(init → feed → status → delete with only the session id) works unchanged; the CLI refuses to bind
a non-loopback address in that state unless ``--insecure`` is given (server.cli).

Credentials are read from ``Authorization: Bearer <key or token>``, ``X-API-Key: <key>``, a
``token`` query parameter (browsers cannot set WebSocket headers) and, for HLS, a path segment:
``/hls/<id>/<viewer token>/playlist.m3u8``. A path segment, not a query parameter, because players
resolve the playlist's relative segment URIs against the playlist's *directory*: the capability
then rides on every segment and part request without the player knowing about it.

Statuses: 401 (+ ``WWW-Authenticate: Bearer``) without a credential or with one that is neither a
configured key nor one of our tokens; 403 for a real credential that does not grant this (a viewer
token on a control route, another session's token, a key that does not own the session).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from starlette.requests import HTTPConnection

from server.api.ratelimit import ProxyResolver
from server.errors import AuthenticationError, ForbiddenError, SessionNotFoundError
from server.settings import Settings

SESSION_PREFIX = "fss_"
VIEWER_PREFIX = "fsv_"
_TOKEN_SHAPE = re.compile(r"fs[sv]_[A-Za-z0-9_.\-]+")
_QUERY_TOKEN = re.compile(r"(?i)([?&](?:token|api_key)=)[^&\s\"]+")


class Access(enum.Enum):
    WATCH = "watch"
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class Client:
    """Who is asking, for quotas: ``key:<fingerprint>`` with API keys, else ``ip:<address>``."""

    id: str
    loopback: bool = False


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fingerprint(key: str) -> str:
    """A short, non-reversible name for an API key (safe for logs, quotas and metrics)."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


class TokenSigner:
    """Stateless session and viewer tokens: HMAC-SHA256 over the session id (and expiry)."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret
        self._clock = clock

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._secret, "\0".join(parts).encode(), hashlib.sha256).digest()

    def session_token(self, session_id: str) -> str:
        return SESSION_PREFIX + _b64(self._mac("control", session_id))

    def viewer_token(self, session_id: str, ttl_s: float) -> str:
        expires = int(self._clock() + ttl_s)
        return f"{VIEWER_PREFIX}{expires:x}.{_b64(self._mac('view', session_id, str(expires))[:18])}"

    def is_session_token(self, token: str, session_id: str) -> bool:
        return hmac.compare_digest(token.encode(), self.session_token(session_id).encode())

    def is_viewer_token(self, token: str, session_id: str) -> bool:
        if not token.startswith(VIEWER_PREFIX) or "." not in token:
            return False
        stamp, _, _sig = token[len(VIEWER_PREFIX) :].partition(".")
        try:
            expires = int(stamp, 16)
        except ValueError:
            return False
        want = f"{VIEWER_PREFIX}{stamp}.{_b64(self._mac('view', session_id, str(expires))[:18])}"
        return hmac.compare_digest(token.encode(), want.encode()) and self._clock() < expires


def credentials_of(conn: HTTPConnection) -> list[str]:
    """Every credential the request carries, in order: Bearer, X-API-Key, ``token`` query, HLS path."""
    found: list[str] = []
    auth = conn.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    api_key = conn.headers.get("x-api-key", "").strip()
    if api_key:
        found.append(api_key)
    token = conn.query_params.get("token")
    if token:
        found.append(token)
    capability = conn.path_params.get("capability")
    if isinstance(capability, str) and capability:
        found.append(capability)
    return [c[:512] for c in found[:4]]  # bounded work per request


class Authenticator:
    """The checks, given the settings; ``owner_of(session_id)`` names the client that created it."""

    def __init__(
        self,
        api_keys: Iterable[str] = (),
        *,
        require_session_token: bool = False,
        secret: bytes | None = None,
        viewer_ttl_s: float = 6 * 3600,
        trusted_proxies: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = [k.encode() for k in api_keys if k]
        self._fingerprints = [fingerprint(k.decode()) for k in self._keys]
        self.keys_configured = bool(self._keys)
        self.active = self.keys_configured or require_session_token
        self.signer = TokenSigner(secret or secrets.token_bytes(32), clock)
        self.viewer_ttl_s = viewer_ttl_s
        self.proxies = ProxyResolver(trusted_proxies)

    @classmethod
    def for_settings(cls, settings: Settings) -> Authenticator:
        secret = settings.token_secret.get_secret_value().encode() if settings.token_secret else None
        return cls(
            [k.get_secret_value() for k in settings.api_keys],
            require_session_token=settings.require_session_token,
            secret=secret,
            viewer_ttl_s=settings.viewer_token_ttl_s,
            trusted_proxies=settings.trusted_proxies,
        )

    # -- keys ----------------------------------------------------------------------------------
    def key_id(self, credential: str) -> str | None:
        """The fingerprint of the configured key equal to ``credential``; compares with every key."""
        raw = credential.encode()
        match: str | None = None
        for key, name in zip(self._keys, self._fingerprints, strict=True):
            if hmac.compare_digest(raw, key):
                match = name
        return match

    def client(self, conn: HTTPConnection) -> Client:
        """The calling client for creation routes; 401 when keys are configured and none matches."""
        address = self.proxies.address(conn.scope)
        loopback = self.proxies.is_loopback(address)
        if not self.keys_configured:
            return Client(f"ip:{address}", loopback)
        creds = credentials_of(conn)
        for credential in creds:
            name = self.key_id(credential)
            if name is not None:  # a key is a client wherever it connects from: never exempt
                return Client(name, False)
        if not creds:
            raise AuthenticationError(
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        raise AuthenticationError("the API key is not valid")

    def require_key(self, conn: HTTPConnection) -> None:
        """Operator routes (/metrics, debug): an API key when keys are configured."""
        if self.keys_configured:
            self.client(conn)

    # -- sessions ------------------------------------------------------------------------------
    def authorize(
        self, conn: HTTPConnection, session_id: str, need: Access, owner_of: Callable[[str], str | None]
    ) -> None:
        """Pass, or raise 401/403: may this request ``need`` the session ``session_id``?"""
        if not self.active:
            return
        creds = credentials_of(conn)
        if not creds:
            raise AuthenticationError(
                f"this route needs the session token (or, to watch, the viewer token) of session "
                f"{session_id[:8]}…: send 'Authorization: Bearer <token>'"
            )
        recognised = False
        for credential in creds:
            if self.signer.is_session_token(credential, session_id):
                return
            if need is Access.WATCH and self.signer.is_viewer_token(credential, session_id):
                return
            if _TOKEN_SHAPE.fullmatch(credential):
                recognised = True
                continue
            name = self.key_id(credential)
            if name is not None:
                if owner_of(session_id) == name:
                    return
                recognised = True
        if recognised:
            raise ForbiddenError(f"this credential does not grant {need.value} of this session")
        raise AuthenticationError("the credential is not a valid API key or token")

    # -- what init hands out -------------------------------------------------------------------
    def grants(self, session_id: str) -> dict[str, str]:
        """``session_token``, ``viewer_token`` and the HLS URL a viewer uses (token in the path
        when auth is active; the published plain URL otherwise)."""
        viewer = self.signer.viewer_token(session_id, self.viewer_ttl_s)
        plain = f"/hls/{session_id}/playlist.m3u8"
        hls = f"/hls/{session_id}/{viewer}/playlist.m3u8" if self.active else plain
        return {
            "session_token": self.signer.session_token(session_id),
            "viewer_token": viewer,
            "hls_url": hls,
            "viewer_url": hls,
        }


def host_is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``; a wildcard (``0.0.0.0``) or any other name is not."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings) -> str | None:
    """Why the server must not start as configured, or None: a non-loopback bind address with no
    API keys would let anyone who can reach it control every session (``--insecure`` overrides)."""
    if settings.api_keys or settings.insecure or host_is_loopback(settings.host):
        return None
    return (
        f"refusing to listen on {settings.host} without API keys: anyone who can reach it could drive, "
        "read and delete every session. Set FACESTREAM_API_KEYS=<key>[,<key>…] (clients send "
        "'Authorization: Bearer <key>'), or pass --insecure (FACESTREAM_INSECURE=1) on a trusted network."
    )


def authenticator_of(app: FastAPI) -> Authenticator:
    """The app's authenticator (server.api.middleware installs it); an open one for bare test apps."""
    try:
        auth = app.state.auth
    except AttributeError:  # an app without server.api.middleware (router tests): open
        auth = app.state.auth = Authenticator()
    if not isinstance(auth, Authenticator):
        raise TypeError("app.state.auth must be a server.api.auth.Authenticator")
    return auth


def _owner_lookup(app: FastAPI) -> Callable[[str], str | None]:
    try:
        return app.state.owners.owner_of  # server.api.owners.SessionOwners, from middleware
    except AttributeError:  # an app without server.api.middleware: nobody owns anything
        return lambda _sid: None


def authorize(conn: HTTPConnection, session_id: str, need: Access) -> None:
    """Raise 401/403 unless ``conn`` may ``need`` the session (a no-op while auth is inactive)."""
    app = conn.scope["app"]
    authenticator_of(app).authorize(conn, session_id, need, _owner_lookup(app))


def client_of(conn: HTTPConnection) -> Client:
    return authenticator_of(conn.scope["app"]).client(conn)


# FastAPI dependencies (routes with ``{session_id}`` in their path) ------------------------------
def control(request: Request, session_id: str) -> None:
    authorize(request, session_id, Access.CONTROL)


def watch(request: Request, session_id: str) -> None:
    capability = request.path_params.get("capability")
    if capability is not None and not _TOKEN_SHAPE.fullmatch(capability):
        # ``/hls/<id>/<anything>/<file>`` is only a viewer-token URL; ``..`` and friends are 404
        raise SessionNotFoundError("no such HLS path")
    authorize(request, session_id, Access.WATCH)


def operator(request: Request) -> None:
    authenticator_of(request.app).require_key(request)


# Logs -------------------------------------------------------------------------------------------
def redact(text: str) -> str:
    """``text`` with every token (path or query) replaced by a placeholder."""
    text = _QUERY_TOKEN.sub(r"\1***", text)
    return _TOKEN_SHAPE.sub(lambda m: m.group(0)[:4] + "***", text)


class RedactTokens(logging.Filter):
    """Scrubs tokens from a record's message and arguments (uvicorn's access log prints paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction() -> None:
    """Once per process: the access logger never prints a token (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
