"""The FastAPI application factory: wires settings, engine, InferenceAgent and SessionRegistry.

``create_app(settings)`` builds everything inside the lifespan (nothing at import time); the
sweeper task expiring idle sessions belongs to the app and is cancelled on shutdown, after which
every live playlist is ended (``#EXT-X-ENDLIST``) and every thread joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from models.engine import Engine
from models.engines import create_engine
from server.errors import install_error_handlers
from server.hardening import install_hardening
from server.inference import InferenceAgent
from server.realtime.mount import include_realtime, open_gateway
from server.registry import SessionRegistry
from server.routes import batch, chunked, health, hls, metrics, ready
from server.settings import Settings

log = logging.getLogger("facestream.app")


async def _sweep(registry: SessionRegistry, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await registry.expire_idle()
        except Exception:  # keep sweeping; one bad session must not stop expiry for all
            log.exception("session sweep failed")


def _warm_up(engine: Engine) -> None:
    """Analyse the bundled sample face once so that the first client's init is not the one paying
    for model loading (MediaPipe graphs, renderer caches)."""
    from models.samples import SAMPLE_FACE
    from models.types import EngineParams

    try:
        prepare_bytes = getattr(engine, "prepare_bytes", None)
        if callable(prepare_bytes):
            prepare_bytes(SAMPLE_FACE.read_bytes(), EngineParams())
    except Exception:  # a warm-up failure is not fatal: the first init will report the real error
        log.warning("engine warm-up failed", exc_info=True)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the app. ``engine`` may be injected (tests, benchmarks); otherwise ``settings.engine``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine is not None:
            eng = engine
        else:
            eng = await asyncio.to_thread(
                create_engine, settings.engine, settings.weights_dir, settings.device
            )
        if settings.warm_up:
            await asyncio.to_thread(_warm_up, eng)
        agent = InferenceAgent(settings.inference_workers, max_jobs=settings.max_sessions * 4 + 16)
        registry = SessionRegistry(settings, eng, agent)
        removed = registry.clean_storage()
        if removed:
            log.info("removed %d session directories left by an earlier run", removed)
        app.state.registry = registry
        registry.metrics = app.state.metrics
        app.state.metrics.bind(registry)
        app.state.frame_logs = registry.frame_logs
        gateway = open_gateway(app, settings)
        sweeper = asyncio.create_task(_sweep(registry, settings.sweep_interval_s), name="session-sweeper")
        try:
            yield
        finally:
            app.state.shutting_down = True  # /ready answers 503 from here on
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await gateway.close()
            await registry.shutdown()
            await asyncio.to_thread(agent.close)

    app = FastAPI(title="facestream", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "DELETE"],  # the JS client works cross-origin (no credentials)
        allow_headers=["*"],
        allow_credentials=False,
    )
    install_hardening(app, settings)  # body limits while streaming, rate limit, error metrics

    app.include_router(chunked.router)
    app.include_router(batch.router)  # whole-audio MP4/stream, recordings, preview
    if settings.hls_mode == "ll":  # before the TS route: it serves the same /hls/<id>/… URLs
        from server import llhls_routes

        app.include_router(llhls_routes.router)
    app.include_router(hls.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(ready.router)
    include_realtime(app, settings)
    if settings.debug_barcode:
        from server import debug_latency

        app.include_router(debug_latency.router)
    static = settings.static_dir
    if static is not None and (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
    return app
