"""Debug-only (``FACESTREAM_DEBUG_BARCODE=1``): when each piece of real-time speech reached the
server and where it landed on the timeline, for the WebRTC glass-to-glass benchmark.

Latency of a displayed frame k = the time the browser showed k − the time the server received
the audio that frame k animates (the chunk holding timeline sample k × 640). The route serves the
arrivals; the benchmark joins them with the frame indices the page read off the barcodes.
"""

from __future__ import annotations

import collections
import threading

from fastapi import APIRouter, Request

MAX_RECORDS = 50 * 60 * 10
"""Arrivals kept per session: 10 minutes of 20 ms messages (older ones are dropped)."""


class IngestLog:
    """Bounded, thread-safe (arrival time in s since the epoch, first timeline sample at 16 kHz)."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._records: collections.deque[tuple[float, int]] = collections.deque(maxlen=max_records)
        self._lock = threading.Lock()

    def record(self, arrived: float, start_sample: int) -> None:
        with self._lock:
            self._records.append((arrived, start_sample))

    def pairs(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._records)


router = APIRouter(prefix="/api/debug")


@router.get("/sessions/{session_id}/ingest-times")
async def ingest_times(request: Request, session_id: str) -> dict:
    port = request.app.state.registry.realtime(session_id)
    log = getattr(port, "ingest_log", None)
    records = log.pairs() if log is not None else []
    return {"session_id": session_id, "clock": "time.time", "sample_rate": 16000, "arrivals": records}
