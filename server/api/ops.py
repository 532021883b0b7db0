"""Operations endpoints for load balancers, orchestrators and scrapers.

* ``GET /health`` — liveness (the process answers) plus a small capacity summary;
* ``GET /ready`` — readiness: 503 with ``Retry-After`` while every session slot is taken, the
  storage volume is (nearly) full or the server is shutting down, so a balancer routes new
  sessions elsewhere without restarting a healthy process;
* ``GET /metrics`` — the app's ``ServerMetrics`` in the Prometheus text format.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from server.api.guards import check_storage
from server.errors import StorageUnavailableError

router = APIRouter()

@router.get("/health")
async def health(request: Request) -> dict:
    registry = request.app.state.registry
    settings = registry.settings
    return {
        "status": "ok",
        "engine": getattr(registry.engine, "name", settings.engine),
        "live_sessions": registry.live_count(),
        "sessions": len(registry.sessions()),
        "max_sessions": settings.max_sessions,
        "inference_queue": registry.executor.queued,
    }


RETRY_AFTER_S = 10


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    registry = getattr(state, "registry", None)
    if registry is None or getattr(state, "shutting_down", False):
        body = {"status": "unavailable", "reason": "shutting down" if registry else "starting"}
        return JSONResponse(body, 503, {"Retry-After": str(RETRY_AFTER_S)})
    live, limit = registry.live_count(), registry.settings.max_sessions
    body = {"status": "ready", "live_sessions": live, "max_sessions": limit}
    if live >= limit:
        body |= {"status": "unavailable", "reason": "at capacity"}
        return JSONResponse(body, 503, {"Retry-After": str(RETRY_AFTER_S)})
    try:
        check_storage(registry.settings)
    except StorageUnavailableError as e:
        body |= {"status": "unavailable", "reason": str(e)}
        return JSONResponse(body, 503, {"Retry-After": str(RETRY_AFTER_S)})
    return JSONResponse(body)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)
