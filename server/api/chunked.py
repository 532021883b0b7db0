"""The published chunked API: init, feed, status, delete (paths, fields and JSON keys are fixed)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Form, Request, UploadFile

from models.types import ENGINE_SAMPLE_RATE
from server.api import auth
from server.api.forms import parse_bool, parse_engine_params, parse_float, parse_int, read_upload
from server.api.guards import check_image, check_storage
from server.api.owners import SessionOwners, liveness, session_quota
from server.errors import InvalidFieldError, SessionFinishedError
from server.session.audio.decode import decode_audio_chunk
from server.session.registry import SessionRegistry
from server.session.session import FeedResult

router = APIRouter(prefix="/api/audio-driven/chunked")


def _registry(request: Request) -> SessionRegistry:
    return request.app.state.registry


def _owners(request: Request) -> SessionOwners:
    return request.app.state.owners


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
    client = auth.client_of(request)  # 401 without a valid API key when keys are configured
    params = parse_engine_params(crop, seed, nfe, cfg_scale, pose_style, gaze_style)
    window = parse_float("chunk_duration", chunk_duration, 1.0, 0.1, 10.0)
    raw_rate = parse_int("audio_sample_rate", audio_sample_rate, 24_000, 8_000, 192_000)
    data = await read_upload("image", image, registry.settings.max_image_bytes)
    await check_image(data, registry.settings.max_image_pixels)  # off the loop; bombs → 413
    check_storage(registry.settings)  # a (nearly) full or missing volume → 507, not a later failure
    quota = session_quota(registry.settings, client)
    with _owners(request).admit(client, quota, liveness(registry)) as claim:  # 429 beyond the quota
        session = await registry.create(data, params, window, raw_rate)
        claim(session.session_id)
    grants = auth.authenticator_of(request.app).grants(session.session_id)
    face = session.avatar.face_box
    return {
        "status": "success",
        "session_id": session.session_id,
        "hls_url": grants["hls_url"],  # carries the viewer token in its path when auth is on
        "session_token": grants["session_token"],
        "viewer_token": grants["viewer_token"],
        "viewer_url": grants["viewer_url"],
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
        # which face is animated (source pixels) and how many the photo has: with several, the
        # largest and most central one; absent when the engine does not report it
        **({"face": {"box": list(face), "faces_found": session.avatar.faces_found}} if face else {}),
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
    auth.authorize(request, session_id, auth.Access.CONTROL)
    session = registry.live(session_id)
    final = parse_bool("is_final_chunk", is_final_chunk, False)
    settings = registry.settings
    data = await read_upload("audio_chunk", audio_chunk, settings.max_audio_chunk_bytes, required=not final)
    if not session.state.accepts_speech:
        raise SessionFinishedError(f"session is {session.state}; it no longer accepts audio")
    loop = asyncio.get_running_loop()

    # decode + resample + schedule, off the event loop, in arrival order per session
    def accept() -> FeedResult:
        decoded = (
            decode_audio_chunk(data, session.raw_sample_rate, settings.max_chunk_seconds)
            if data or not final
            else None
        )
        return session.push_speech(decoded, final)

    async with session.feed_order:  # concurrent feeds of one session keep their arrival order
        result = await loop.run_in_executor(registry.ingest, accept)  # live pool (server.compute.pools)
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


@router.get("/status/{session_id}", dependencies=[Depends(auth.watch)])
async def session_status(request: Request, session_id: str) -> dict:
    session = _registry(request).get(session_id)  # a GET does not extend the session's life
    # the sink may stat its directory: off the loop. ``segments`` counts every published segment,
    # also those that left the live window; the page attaches its player once one exists
    count = await asyncio.to_thread(lambda: session.sink.published_count)
    return {**session.status(), "playlist_ready": count > 0, "segments": count}


@router.delete("/session/{session_id}", dependencies=[Depends(auth.control)])
async def delete_session(request: Request, session_id: str) -> dict:
    await _registry(request).delete(session_id)
    _owners(request).forget(session_id)
    return {"status": "success", "session_id": session_id, "message": "session stopped and its files removed"}
