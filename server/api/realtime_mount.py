"""Hook-in for the app factory: the real-time router (WebSocket, SSE, interrupt, WebRTC) and the
WebRTC gateway's lifetime.

Why a separate module: ``server/app.py`` is shared; it calls ``include_realtime`` once when it builds
the app and ``open_gateway`` / ``gateway.close()`` in its lifespan, and everything else lives here.
The gateway is created in the lifespan (one per running app) and looked up per request, so an app
object can be started, stopped and started again.
"""

from __future__ import annotations

from fastapi import FastAPI

from server.api.realtime import RealtimeLimits, build_realtime_router
from server.session.realtime_port import RealtimeSessionPort
from server.settings import Settings
from server.sinks.webrtc.gateway import IceServer, WebRtcConfig, WebRtcGateway


def webrtc_config(settings: Settings) -> WebRtcConfig:
    servers = tuple(IceServer(tuple(s.urls), s.username, s.credential) for s in settings.webrtc_ice_servers)
    return WebRtcConfig(
        ice_servers=servers,
        allow_loopback=settings.webrtc_allow_loopback,
        max_viewers_per_session=settings.max_listeners_per_session,
        max_viewers_per_client=settings.max_listeners_per_client,
        connect_timeout_s=settings.webrtc_connect_timeout_s,
    )


def open_gateway(app: FastAPI, settings: Settings) -> WebRtcGateway:
    """Create the app's gateway (call in the lifespan; close it there on shutdown)."""
    gateway = WebRtcGateway(webrtc_config(settings))
    app.state.webrtc_gateway = gateway
    return gateway


def include_realtime(app: FastAPI, settings: Settings) -> None:
    """Mount the real-time routes; include before the static mount at ``/``."""

    def get_session(session_id: str) -> RealtimeSessionPort:
        return app.state.registry.realtime(session_id)

    def get_gateway() -> WebRtcGateway:
        return app.state.webrtc_gateway

    limits = RealtimeLimits(
        max_chunk_seconds=min(1.0, settings.max_chunk_seconds), ws_messages_per_s=settings.ws_messages_per_s
    )
    app.include_router(
        build_realtime_router(get_session, get_gateway, limits=limits)
    )
