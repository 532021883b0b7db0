"""Prometheus metrics, computed at scrape time from the registry (nothing on the hot path).

Counters summed over the sessions the registry still holds (a deleted session's counts leave
with it, so rates over long windows undercount; the gauges are exact).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.registry import SessionRegistry

router = APIRouter()


class _SessionsCollector:
    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        reg = self._registry
        sessions = reg.sessions()
        yield GaugeMetricFamily(
            "facestream_live_sessions", "Sessions streaming or draining", reg.live_count()
        )
        yield GaugeMetricFamily("facestream_max_sessions", "Live session limit", reg.settings.max_sessions)
        yield GaugeMetricFamily("facestream_sessions", "Sessions held (incl. finished)", len(sessions))
        yield GaugeMetricFamily(
            "facestream_inference_queue", "Producer jobs waiting for a worker", reg.agent.queued
        )
        ticks = CounterMetricFamily("facestream_ticks", "Clock ticks emitted (frames in the streams)")
        ticks.add_metric([], sum(s.ticks_emitted for s in sessions))
        yield ticks
        stale = CounterMetricFamily(
            "facestream_stale_ticks", "Ticks that repeated the previous picture (late frame)"
        )
        stale.add_metric([], sum(s.stale_ticks for s in sessions))
        yield stale
        worst = GaugeMetricFamily(
            "facestream_frame_lateness_p99_seconds", "Worst per-session p99 of render completion − deadline"
        )
        p99s = [s.lateness.summary_ms()["p99"] for s in sessions if not s.state.terminal]
        worst.add_metric([], max([p / 1000 for p in p99s if p is not None], default=0.0))
        yield worst


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = CollectorRegistry()
    registry.register(_SessionsCollector(request.app.state.registry))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
