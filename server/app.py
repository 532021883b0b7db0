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

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from models.engine import Engine
from models.engines import create_engine
from server.errors import PayloadTooLargeError, error_response, install_error_handlers, status_for
from server.inference import InferenceAgent
from server.registry import SessionRegistry
from server.routes import chunked, health, hls, metrics
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
        app.state.frame_logs = registry.frame_logs
        sweeper = asyncio.create_task(_sweep(registry, settings.sweep_interval_s), name="session-sweeper")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await registry.shutdown()
            await asyncio.to_thread(agent.close)

    app = FastAPI(title="facestream", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET"],
        allow_headers=["*"],
        allow_credentials=False,
    )
    body_limit = max(settings.max_image_bytes, settings.max_audio_chunk_bytes) + 1024 * 1024

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):  # refuse huge bodies before parsing them
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > body_limit:
            err = PayloadTooLargeError(
                f"request body of {length} bytes exceeds the limit of {body_limit} bytes"
            )
            return error_response(status_for(err), str(err))
        return await call_next(request)

    app.include_router(chunked.router)
    app.include_router(hls.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    if settings.debug_barcode:
        from server import debug_latency

        app.include_router(debug_latency.router)
    static = settings.static_dir
    if static is not None and (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
    return app
