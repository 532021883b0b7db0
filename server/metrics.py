"""The server's Prometheus metrics: one ``ServerMetrics`` per app (its own CollectorRegistry, so
several apps in one process — tests, benchmarks — never share counts).

Two kinds:
* **observed** as things happen: frame lateness (histogram, fed by each session's LatenessStats
  observer), ffmpeg restarts, HTTP errors by route template and status (``ErrorCountingMiddleware``);
* **collected** at scrape time from the registry (nothing on the hot path): sessions by state,
  live/max sessions, queue depths (inference heap, blocking pool, frames, encoder ticks, speech),
  and ticks/frames/stale counters. Counters stay monotonic across deleted sessions: a session's last
  seen values move to a retired total when it leaves the registry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.session.state import SessionState

LATENESS_BUCKETS = (-0.2, -0.1, -0.05, -0.02, 0.0, 0.02, 0.04, 0.1, 0.2, 0.5, 1.0, 5.0)
"""Seconds; negative = rendered ahead of its deadline (the normal case). > 0 shows a repeated picture."""

_COUNTED = ("ticks_emitted", "frames_rendered", "stale_ticks", "speech_frames_emitted")


class _RegistryCollector:
    """Scrape-time view of the SessionRegistry."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, int]] = {}
        self._retired = dict.fromkeys(_COUNTED, 0)

    def _totals(self, sessions: list[Any]) -> dict[str, int]:
        with self._lock:
            loads = {s.session_id: s.load() for s in sessions}
            current = {sid: load.counters() for sid, load in loads.items()}
            for sid, last in self._last.items():
                if sid not in current:
                    for k in _COUNTED:
                        self._retired[k] += last[k]
            self._last = current
            return {k: self._retired[k] + sum(v[k] for v in current.values()) for k in _COUNTED}

    def collect(self) -> Iterator[Metric]:
        reg = self._registry
        sessions = reg.sessions()
        yield GaugeMetricFamily(
            "facestream_live_sessions", "Sessions streaming or draining", reg.live_count()
        )
        yield GaugeMetricFamily("facestream_max_sessions", "Live session limit", reg.settings.max_sessions)
        yield GaugeMetricFamily("facestream_sessions", "Sessions held (incl. finished)", len(sessions))
        by_state = GaugeMetricFamily(
            "facestream_sessions_by_state", "Sessions held, by state", labels=["state"]
        )
        for state in SessionState:
            by_state.add_metric([str(state)], sum(1 for s in sessions if s.state is state))
        yield by_state
        totals = self._totals(sessions)
        for key, name, doc in (
            ("ticks_emitted", "facestream_ticks", "Clock ticks emitted (frames in the streams)"),
            ("frames_rendered", "facestream_frames_rendered", "Frames rendered by the engine"),
            (
                "stale_ticks",
                "facestream_stale_ticks",
                "Ticks that repeated the previous picture (late frame)",
            ),
            ("speech_frames_emitted", "facestream_speech_frames", "Ticks that carried speech"),
        ):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], totals[key])
            yield counter
        yield from self._queues(reg, sessions)
        worst = GaugeMetricFamily(
            "facestream_frame_lateness_p99_seconds", "Worst per-session p99 of render completion − deadline"
        )
        p99s = [load.lateness_p99_ms for load in (s.load() for s in sessions)]
        worst.add_metric([], max([p / 1000 for p in p99s if p is not None], default=0.0))
        yield worst

    @staticmethod
    def _queues(reg: Any, sessions: list[Any]) -> Iterator[Metric]:
        loads = [s.load() for s in sessions if not s.state.terminal]
        depths = {
            "inference_jobs": reg.executor.queued,
            "blocking_jobs": reg.executor.blocking_queued,
            "rendered_frames": sum(load.frames_queued for load in loads),
            "encoder_ticks": sum(load.encoder_ticks_queued for load in loads),
        }
        queue = GaugeMetricFamily("facestream_queue_depth", "Items waiting, by queue", labels=["queue"])
        for name, value in depths.items():
            queue.add_metric([name], value)
        yield queue
        yield GaugeMetricFamily(
            "facestream_inference_queue", "Producer jobs waiting for a worker", reg.executor.queued
        )
        speech = sum(load.queued_speech_seconds for load in loads)
        yield GaugeMetricFamily("facestream_queued_speech_seconds", "Speech accepted, not yet played", speech)


class _NodeLabelled:
    """Every sample of ``inner`` with ``node="<id>"`` added: the series of several nodes stay apart
    wherever they are merged (a federation, a remote-write store, a dashboard summing nodes),
    whatever ``instance`` label the scraper gives them."""

    def __init__(self, inner: CollectorRegistry, node: str) -> None:
        self._inner = inner
        self._node = node

    def collect(self) -> Iterator[Metric]:
        for metric in self._inner.collect():
            metric.samples = [s._replace(labels={**s.labels, "node": self._node}) for s in metric.samples]
            yield metric


class ServerMetrics:
    """Everything ``/metrics`` exports for one app; ``node`` (``Settings.node_id``) labels it all."""

    def __init__(self, node: str = "") -> None:
        self.registry = CollectorRegistry()
        self._exported = self.registry
        if node:
            self._exported = CollectorRegistry(auto_describe=False)
            self._exported.register(_NodeLabelled(self.registry, node))
        self.frame_lateness = Histogram(
            "facestream_frame_lateness_seconds",
            "Render completion − deadline per frame (> 0: the clock repeated the previous picture)",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.ffmpeg_restarts = Counter(
            "facestream_ffmpeg_restarts", "Encoder processes restarted after dying", registry=self.registry
        )
        self.request_errors = Counter(
            "facestream_request_errors",
            "HTTP responses with status >= 400, by route template and status",
            ["route", "status"],
            registry=self.registry,
        )
        self._collector: _RegistryCollector | None = None

    def bind(self, session_registry: Any) -> None:
        """Export the registry's sessions and queues (call once the registry exists)."""
        if self._collector is not None:
            self.registry.unregister(self._collector)
        self._collector = _RegistryCollector(session_registry)
        self.registry.register(self._collector)

    def observe_lateness(self, seconds: float) -> None:
        """A live session's frame lateness (render completion − deadline), fed into the histogram."""
        self.frame_lateness.observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self._exported), CONTENT_TYPE_LATEST


def route_label(scope: Scope) -> str:
    """The matched route's template (``/hls/{session_id}/{name}``), never the raw path: bounded labels."""
    route = scope.get("route")
    return route.path if isinstance(route, Route | WebSocketRoute | Mount) else "unmatched"


class ErrorCountingMiddleware:
    """Counts every response with status >= 400 into ``metrics.request_errors``."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.metrics.request_errors.labels(route_label(scope), str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            self.metrics.request_errors.labels(route_label(scope), "500").inc()
            raise
