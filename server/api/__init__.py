"""① Edges: parse and validate a request, then call a session or a job; never build one.

``mount(app, settings)`` is THE ordered list of what the app serves: middleware (outermost
first), the API routers, LL-HLS before TS (both answer ``/hls/<id>/…``), the real-time routes,
debug routes when asked for, and the static page last (it is mounted at ``/``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from server.api import chunked, hls, ops, whole_audio
from server.api.middleware import install_middleware
from server.api.realtime_mount import include_realtime
from server.settings import Settings


def mount(app: FastAPI, settings: Settings) -> None:
    install_middleware(app, settings)
    app.include_router(chunked.router)
    app.include_router(whole_audio.router)  # whole-audio MP4/stream, recordings, preview
    if settings.hls_mode == "ll":  # before the TS route: it serves the same /hls/<id>/… URLs
        from server.api import llhls

        app.include_router(llhls.router)
    app.include_router(hls.router)
    app.include_router(ops.router)
    include_realtime(app, settings)
    if settings.debug_barcode:
        from server.api import debug

        app.include_router(debug.router)
    static = settings.static_dir
    if static is not None and (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
