"""Debug-only routes (``FACESTREAM_DEBUG_BARCODE=1``; never on by default): the server's clock and,
per session, when each frame was handed to the sink and when each piece of real-time speech
arrived, for the glass-to-glass benchmarks (``server.sinks.debug`` records both)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from server.api import auth
from server.errors import SessionNotFoundError
from server.session.ids import validate_session_id

router = APIRouter(prefix="/api/debug")


@router.get("/clock")
async def server_clock() -> dict:
    """The server's wall clock, for the page's NTP-style offset measurement."""
    return {"server_time": time.time()}


@router.get("/sessions/{session_id}/frame-times", dependencies=[Depends(auth.watch)])
async def frame_times(request: Request, session_id: str) -> dict:
    log = request.app.state.frame_logs.get(validate_session_id(session_id))
    if log is None:
        raise SessionNotFoundError(f"no frame log for session {session_id} (unknown, or debug barcode off)")
    return {"session_id": session_id, "clock": "time.time", "frames": log.pairs()}


@router.get("/sessions/{session_id}/ingest-times", dependencies=[Depends(auth.watch)])
async def ingest_times(request: Request, session_id: str) -> dict:
    port = request.app.state.registry.realtime(session_id)
    log = port.ingest_log
    records = log.pairs() if log is not None else []
    return {"session_id": session_id, "clock": "time.time", "sample_rate": 16000, "arrivals": records}
