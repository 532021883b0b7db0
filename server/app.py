"""The FastAPI application factory: wires settings, engine, InferenceExecutor and SessionRegistry.

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

from models.engines import create_engine
from models.engines.base import Engine
from server.api import mount
from server.api.realtime_mount import open_gateway
from server.compute.executor import InferenceExecutor
from server.errors import install_error_handlers
from server.session.registry import SessionRegistry
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
        executor = InferenceExecutor(settings.inference_workers, max_jobs=settings.max_sessions * 4 + 16)
        registry = SessionRegistry(settings, eng, executor)
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
            await asyncio.to_thread(executor.close)

    app = FastAPI(title="facestream", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    mount(app, settings)
    return app
