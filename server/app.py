"""The FastAPI application factory: wires settings, engine, InferenceExecutor and SessionRegistry.

``create_app(settings)`` builds everything inside the lifespan (nothing at import time); the
sweeper task expiring idle sessions and the heap trimmer (server.memory) belong to the app and
are cancelled on shutdown, after which
every live playlist is ended (``#EXT-X-ENDLIST``) and every thread joined. The node's drain
(server.drain, ``app.state.drain``) is the app's too: ``on_drained`` is how it leaves (the CLI
passes a graceful uvicorn exit), ``drain_signal`` makes SIGUSR1 start it (main thread only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from models.engines import create_engine
from models.engines.base import Engine, WarmsWorkers, WorkerProcesses
from server.api import mount
from server.api.realtime_mount import open_gateway
from server.assembly import create_registry
from server.compute.avatar import prepare_avatar
from server.compute.batch import BatchRenderer
from server.compute.capacity import calibrate
from server.compute.executor import InferenceExecutor
from server.drain import Drain
from server.errors import install_error_handlers
from server.memory import HeapTrimmer
from server.session.registry import SessionRegistry
from server.settings import Settings, cpu_count

log = logging.getLogger("facestream.app")


async def _sweep(registry: SessionRegistry, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await registry.expire_idle()
        except Exception:  # keep sweeping; one bad session must not stop expiry for all
            log.exception("session sweep failed")


async def _trim_heap(trimmer: HeapTrimmer, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(trimmer.trim)
        except Exception:  # keep trimming later; a failed trim costs nothing but memory
            log.exception("heap trim failed")


WARM_UP_SPEECH_S = 2.0


def _warm_up(engine: Engine) -> None:
    """Analyse the bundled sample face once so that the first client's init is not the one paying
    for model loading (MediaPipe graphs, renderer caches); an engine with worker processes also
    runs a little of the sample speech through each (``WarmsWorkers``), so the first live
    sessions do not pay for cold workers."""
    from models.samples import SAMPLE_FACE, sample_speech_pcm
    from models.types import EngineParams

    try:
        avatar = prepare_avatar(engine, SAMPLE_FACE.read_bytes(), EngineParams())
        if isinstance(engine, WarmsWorkers):
            engine.warm_workers(avatar, sample_speech_pcm(WARM_UP_SPEECH_S))
    except Exception:  # a warm-up failure is not fatal: the first init will report the real error
        log.warning("engine warm-up failed", exc_info=True)


def _measure_admission(engine: Engine, settings: Settings) -> None:
    """Replace the placeholder ``max_sessions`` by the start-up measurement (server.compute.capacity)."""
    try:
        estimate = calibrate(engine, settings.hls_preset, cpu_count(), settings.admission_utilisation)
    except Exception:  # keep the placeholder; say so, since admission is then a guess
        log.warning(
            "admission calibration failed; max_sessions stays %d", settings.max_sessions, exc_info=True
        )
        return
    settings.max_sessions = estimate.max_sessions
    log.info("admission: %s", estimate.derivation())


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    *,
    on_drained: Callable[[], None] | None = None,
    drain_signal: bool = False,
) -> FastAPI:
    """Build the app. ``engine`` may be injected (tests, benchmarks); otherwise ``settings.engine``.
    ``on_drained`` runs once a drain has finished (None: the drained node stays up, refusing new
    sessions); ``drain_signal``: SIGUSR1 starts a drain of ``settings.drain_timeout_s``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine is not None:
            eng = engine
        else:
            eng = await asyncio.to_thread(
                create_engine,
                settings.engine,
                settings.weights_dir,
                settings.device,
                settings.cpu_lookahead_frames,
                settings.cpu_engine_processes,
                settings.imtalker_dtype,
                settings.imtalker_compile,
                settings.imtalker_first_window_frames,
            )
        if settings.warm_up:
            await asyncio.to_thread(_warm_up, eng)
        if settings.measure_admission and engine is None:  # no max_sessions: measure our engine
            await asyncio.to_thread(_measure_admission, eng, settings)
        lanes = len(eng.worker_pids) if isinstance(eng, WorkerProcesses) else 0  # a lane per worker
        max_jobs = settings.max_sessions * 4 + 16
        executor = InferenceExecutor(settings.inference_workers, max_jobs=max_jobs, lanes=lanes)
        registry = create_registry(settings, eng, executor, app.state.metrics)
        removed = registry.clean_storage()
        if removed:
            log.info("removed %d session directories left by an earlier run", removed)
        app.state.registry = registry
        app.state.batch_renderer = BatchRenderer(settings, eng, executor)
        app.state.metrics.bind(registry)
        app.state.frame_logs = registry.frame_logs
        gateway = open_gateway(app, settings)
        sweeper = asyncio.create_task(_sweep(registry, settings.sweep_interval_s), name="session-sweeper")
        trimmer = HeapTrimmer()
        heap_trim: asyncio.Task[None] | None = None
        if settings.heap_trim_interval_s > 0 and trimmer.available:
            heap_trim = asyncio.create_task(
                _trim_heap(trimmer, settings.heap_trim_interval_s), name="heap-trim"
            )
        drain = app.state.drain = Drain(registry, on_drained)
        loop = asyncio.get_running_loop()
        if drain_signal:
            loop.add_signal_handler(signal.SIGUSR1, drain.start, settings.drain_timeout_s)
        try:
            yield
        finally:
            app.state.shutting_down = True  # /ready answers 503 from here on
            if drain_signal:
                loop.remove_signal_handler(signal.SIGUSR1)
            await drain.close()
            for task in (sweeper, heap_trim):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await gateway.close()
            await registry.shutdown()
            await asyncio.to_thread(executor.close)
            if engine is None and isinstance(eng, WorkerProcesses):  # ours: stop its workers
                await asyncio.to_thread(eng.close)

    app = FastAPI(title="facestream", version="0.1.0", lifespan=lifespan)
    app.state.registry = None  # set in the lifespan; /ready answers 503 "starting" until then
    app.state.shutting_down = False
    install_error_handlers(app)
    mount(app, settings)
    return app
