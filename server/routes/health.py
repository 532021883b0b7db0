"""Liveness and a small capacity summary (for load balancers and the web page)."""

from __future__ import annotations

from fastapi import APIRouter, Request

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
        "inference_queue": registry.agent.queued,
    }
