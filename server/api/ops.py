"""Operations endpoints for load balancers, orchestrators and scrapers.

* ``GET /health`` — liveness (the process answers) plus a small capacity summary;
* ``GET /ready`` — readiness: 503 with ``Retry-After`` while every session slot is taken, the
  storage volume is (nearly) full or the server is shutting down, so a balancer routes new
  sessions elsewhere without restarting a healthy process;
* ``GET /metrics`` — the app's ``ServerMetrics`` in the Prometheus text format (every sample
  labelled ``node`` when ``node_id`` is set);
* ``POST /admin/drain[?timeout_s=S]`` — start draining (server.drain): only from this host and
  never through a proxy (a request carrying ``X-Forwarded-For``/``Forwarded`` is refused), so
  the balancer's clients cannot drain nodes; deploy/haproxy/haproxy.cfg also denies ``/admin/``.

Behind the balancer (deploy/haproxy/haproxy.cfg) ``/ready`` is the check of the backend that
places *new* sessions and ``/health`` the check of the backend that carries a session's requests:
a full or draining node leaves the first, never the second.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from server.api import auth
from server.api.guards import check_storage
from server.drain import Drain
from server.errors import ForbiddenError, InvalidFieldError, StorageUnavailableError

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict:
    registry = request.app.state.registry
    settings = registry.settings
    return {
        "status": "ok",
        "engine": registry.engine.name,
        "live_sessions": registry.live_count(),
        "sessions": len(registry.sessions()),
        "max_sessions": settings.max_sessions,
        "inference_queue": registry.executor.queued,
        "node": settings.node_id or None,
        "draining": registry.draining,
    }


RETRY_AFTER_S = 10


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    registry = state.registry
    if registry is None or state.shutting_down:
        body = {"status": "unavailable", "reason": "shutting down" if registry else "starting"}
        return JSONResponse(body, 503, {"Retry-After": str(RETRY_AFTER_S)})
    live, limit = registry.live_count(), registry.settings.max_sessions
    body = {"status": "ready", "live_sessions": live, "max_sessions": limit}
    if registry.draining:
        body |= {"status": "unavailable", "reason": "draining"}
        return JSONResponse(body, 503, {"Retry-After": str(RETRY_AFTER_S)})
    if live >= limit:
        body |= {"status": "unavailable", "reason": "at capacity"}
        return JSONResponse(body, 503, {"Retry-After": str(RETRY_AFTER_S)})
    try:
        check_storage(registry.settings)
    except StorageUnavailableError as e:
        body |= {"status": "unavailable", "reason": str(e)}
        return JSONResponse(body, 503, {"Retry-After": str(RETRY_AFTER_S)})
    return JSONResponse(body)


@router.get("/metrics", dependencies=[Depends(auth.operator)])  # an API key when keys are set
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)


def _from_this_host(request: Request) -> bool:
    """A loopback peer that no proxy forwarded (a proxy on this host is loopback too)."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.post("/admin/drain", dependencies=[Depends(auth.operator)], include_in_schema=False)  # ops, not API
async def drain(request: Request, timeout_s: str | None = None) -> JSONResponse:
    if not _from_this_host(request):
        raise ForbiddenError("drain is only accepted from the node's own host, not through a proxy")
    settings = request.app.state.registry.settings
    timeout = settings.drain_timeout_s
    if timeout_s is not None:
        try:
            timeout = float(timeout_s)
        except ValueError:
            raise InvalidFieldError("timeout_s must be a number of seconds") from None
        if not 0 <= timeout <= 86_400:
            raise InvalidFieldError("timeout_s must be between 0 and 86400")
    drainer: Drain = request.app.state.drain
    status = drainer.start(timeout)
    return JSONResponse({"status": "draining", "node": settings.node_id or None, **status.as_dict()}, 202)
