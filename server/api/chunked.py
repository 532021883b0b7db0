"""The published chunked API: init, feed, status, delete (paths, fields and JSON keys are fixed)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Form, Request, UploadFile

from models.types import ENGINE_SAMPLE_RATE
from server.api.forms import parse_bool, parse_engine_params, parse_float, parse_int, read_upload
from server.api.guards import check_image_pixels, check_storage
from server.errors import InvalidFieldError, SessionFinishedError
from server.session.audio.decode import decode_audio_chunk
from server.session.registry import SessionRegistry
from server.sinks.playlist_status import playlist_progress

router = APIRouter(prefix="/api/audio-driven/chunked")


def _registry(request: Request) -> SessionRegistry:
    return request.app.state.registry


@router.post("/init")
async def init_session(
    request: Request,
    image: UploadFile | None = None,
    crop: str | None = Form(None),
    seed: str | None = Form(None),
    nfe: str | None = Form(None),
    cfg_scale: str | None = Form(None),
    chunk_duration: str | None = Form(None),
    audio_sample_rate: str | None = Form(None),
    pose_style: str | None = Form(None),
    gaze_style: str | None = Form(None),
) -> dict:
    registry = _registry(request)
    params = parse_engine_params(crop, seed, nfe, cfg_scale, pose_style, gaze_style)
    window = parse_float("chunk_duration", chunk_duration, 1.0, 0.1, 10.0)
    raw_rate = parse_int("audio_sample_rate", audio_sample_rate, 24_000, 8_000, 192_000)
    data = await read_upload("image", image, registry.settings.max_image_bytes)
    check_image_pixels(data, registry.settings.max_image_pixels)  # header only: bombs → 413
    check_storage(registry.settings)  # a (nearly) full or missing volume → 507, not a later failure
    session = await registry.create(data, params, window, raw_rate)
    return {
        "status": "success",
        "session_id": session.session_id,
        "hls_url": f"/hls/{session.session_id}/playlist.m3u8",
        "message": "session started: the stream is live (idle until speech arrives)",
        "chunk_duration": window,
        "audio_sample_rate": raw_rate,
        "width": session.avatar.size[0],
        "height": session.avatar.size[1],
        "engine": session.engine_name,
        "lead_ms": round(session.lead_frames * 40),
        "preview_url": f"/api/audio-driven/chunked/preview/{session.session_id}",
        "recording_url": f"/api/audio-driven/chunked/session/{session.session_id}/recording.mp4",
        "ll_hls": registry.settings.hls_mode == "ll",  # the page picks its hls.js config by it
    }


@router.post("/feed")
async def feed_chunk(
    request: Request,
    session_id: str | None = Form(None),
    audio_chunk: UploadFile | None = None,
    is_final_chunk: str | None = Form(None),
) -> dict:
    registry = _registry(request)
    if not session_id:
        raise InvalidFieldError("session_id is required")
    session = registry.get(session_id)
    final = parse_bool("is_final_chunk", is_final_chunk, False)
    settings = registry.settings
    data = await read_upload("audio_chunk", audio_chunk, settings.max_audio_chunk_bytes, required=not final)
    if not session.state.accepts_speech:
        raise SessionFinishedError(f"session is {session.state}; it no longer accepts audio")
    loop = asyncio.get_running_loop()

    def accept():  # decode + resample + schedule, off the event loop, in arrival order per session
        decoded = (
            decode_audio_chunk(data, session.raw_sample_rate, settings.max_chunk_seconds)
            if data or not final
            else None
        )
        return session.push_speech(decoded, final)

    async with session.feed_order:  # concurrent feeds of one session keep their arrival order
        result = await loop.run_in_executor(registry.executor.blocking, accept)
    placement = result.placement
    return {
        "status": "success",
        "session_id": session.session_id,
        "buffer_samples": result.queued_samples,
        "frames_generated": session.ticks_emitted,
        "session_status": str(result.state),
        "message": "final chunk accepted; queued speech will play out" if final else "chunk accepted",
        "queued_speech_seconds": round(result.queued_samples / ENGINE_SAMPLE_RATE, 3),
        "scheduled_start_seconds": None if placement is None else placement.start_seconds,
        "scheduled_start_frame": None if placement is None else placement.start_frame,
    }


@router.get("/status/{session_id}")
async def session_status(request: Request, session_id: str) -> dict:
    session = _registry(request).get(session_id)
    session.touch()
    return {**session.status(), **await playlist_progress(session)}  # + playlist_ready, segments


@router.delete("/session/{session_id}")
async def delete_session(request: Request, session_id: str) -> dict:
    await _registry(request).delete(session_id)
    return {"status": "success", "session_id": session_id, "message": "session stopped and its files removed"}
