"""Readiness (``/ready``): may a load balancer send this server a new session right now?

Unlike ``/health`` (liveness: the process answers), readiness is 503 with ``Retry-After`` while
every session slot is taken, the storage volume is (nearly) full or the server is shutting
down, so a balancer routes new sessions elsewhere without restarting a healthy process.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.errors import StorageUnavailableError
from server.limits import check_storage

router = APIRouter()

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
