"""Wires the protective edges into an app: CORS, body limits, per-client rate limit, error metrics.

Middleware order (outermost first): error counting (sees every refusal below it), rate limit
(refuses before anything is read), body limit (refuses while the body streams in), CORS, then the app.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from server.api.guards import BodyLimitMiddleware, limit_for_path
from server.api.ratelimit import ClientRateLimiter, RateLimitMiddleware
from server.metrics import ErrorCountingMiddleware, ServerMetrics
from server.settings import Settings


def install_middleware(app: FastAPI, settings: Settings) -> ServerMetrics:
    """Add the middlewares and ``app.state.metrics``; returns the metrics object."""
    metrics = ServerMetrics()
    app.state.metrics = metrics
    app.state.shutting_down = False
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "DELETE"],  # the JS client works cross-origin (no credentials)
        allow_headers=["*"],
        allow_credentials=False,
    )
    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for_path(settings))
    if settings.rate_limit_per_s > 0:
        limiter = ClientRateLimiter(
            settings.rate_limit_per_s, settings.rate_limit_burst, settings.rate_limit_clients
        )
        app.state.rate_limiter = limiter
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(ErrorCountingMiddleware, metrics=metrics)  # added last = outermost
    return metrics
