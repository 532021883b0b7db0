"""Whole-audio endpoints, session recordings and the avatar preview.

* ``POST /api/audio-driven`` → ``video/mp4`` (server.compute.batch); the temporary file is removed after
  the response is sent.
* ``POST /api/audio-driven/stream`` → JSON with ``session_id`` and ``hls_url`` at once; the clip
  renders into an EVENT playlist (server.session.progressive) watched/deleted through the chunked routes.
* ``GET /api/audio-driven/chunked/session/{id}/recording.mp4``: the session so far as one MP4
  (server.sinks.recording), for chunked and progressive sessions, until the session expires.
* ``GET /api/audio-driven/chunked/preview/{id}``: the session's cropped avatar as JPEG (no-store).

Form fields have the chunked init's names, defaults and ranges (server.api.forms); raw PCM uploads are
read at ``audio_sample_rate`` (default 24000), containers carry their own rate.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from models.types import EngineParams
from server.api import auth
from server.api.forms import parse_engine_params, parse_int, read_upload
from server.api.guards import check_image
from server.api.owners import liveness, session_quota
from server.compute.batch import BatchRenderer, BatchResult, prepare_inputs
from server.session.ids import new_session_id
from server.session.progressive import open_progressive
from server.session.registry import SessionRegistry
from server.sinks.recording import write_recording

router = APIRouter(prefix="/api/audio-driven")
_T = TypeVar("_T")


def _registry(request: Request) -> SessionRegistry:
    return request.app.state.registry


def _batch(request: Request) -> BatchRenderer:
    """The app's one BatchRenderer (made in the lifespan, next to the registry it shares)."""
    return request.app.state.batch_renderer


@dataclass(frozen=True, slots=True)
class WholeAudioForm:
    """The validated multipart fields of both whole-audio endpoints."""

    image_bytes: bytes
    audio_bytes: bytes
    params: EngineParams
    raw_rate: int
    client: auth.Client


async def whole_audio_form(
    request: Request,
    image: UploadFile | None = None,
    audio: UploadFile | None = None,
    crop: str | None = Form(None),
    seed: str | None = Form(None),
    nfe: str | None = Form(None),
    cfg_scale: str | None = Form(None),
    pose_style: str | None = Form(None),
    gaze_style: str | None = Form(None),
    audio_sample_rate: str | None = Form(None),
) -> WholeAudioForm:
    """One dependency for both routes, so their fields, defaults and limits cannot drift apart."""
    settings = _registry(request).settings
    client = auth.client_of(request)  # 401 without a valid API key when keys are configured
    params = parse_engine_params(crop, seed, nfe, cfg_scale, pose_style, gaze_style)
    raw_rate = parse_int("audio_sample_rate", audio_sample_rate, 24_000, 8_000, 192_000)
    image_bytes = await read_upload("image", image, settings.max_image_bytes)
    audio_bytes = await read_upload("audio", audio, settings.max_audio_file_bytes)
    await check_image(image_bytes, settings.max_image_pixels)  # off the loop; bombs → 413
    return WholeAudioForm(image_bytes, audio_bytes, params, raw_rate, client)


async def _in_scratch_dir(
    request: Request, produce: Callable[[Path], Awaitable[_T]]
) -> tuple[_T, BackgroundTask]:
    """Run ``produce(workdir)`` in a fresh scratch folder under storage; the returned task removes it
    once the response is sent (and it is removed at once if producing fails)."""
    storage = _registry(request).settings.storage_dir
    storage.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".scratch-", dir=storage))
    try:
        made = await produce(workdir)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
        raise
    return made, BackgroundTask(shutil.rmtree, workdir, True)


@router.post("", response_class=FileResponse)
async def render_mp4(request: Request, form: WholeAudioForm = Depends(whole_audio_form)) -> FileResponse:
    def produce(workdir: Path) -> Awaitable[BatchResult]:
        return _batch(request).render(
            form.image_bytes, form.audio_bytes, form.params, form.raw_rate, workdir / "out.mp4"
        )

    result, cleanup = await _in_scratch_dir(request, produce)
    return FileResponse(
        result.path,
        media_type="video/mp4",
        filename="facestream.mp4",
        headers={
            "X-Render-Frames": str(result.frames),
            "X-Render-Seconds": f"{result.render_seconds:.3f}",
            "X-Render-Speed": f"{result.speed:.2f}",
        },
        background=cleanup,
    )


@router.post("/stream")
async def render_stream(request: Request, form: WholeAudioForm = Depends(whole_audio_form)) -> dict:
    registry = _registry(request)
    s = registry.settings
    params = form.params
    loop = asyncio.get_running_loop()
    owners = request.app.state.owners
    quota = session_quota(s, form.client)
    with owners.admit(form.client, quota, liveness(registry)) as claim, registry.reserve():
        avatar, timeline = await loop.run_in_executor(
            registry.executor.blocking, prepare_inputs,
            registry.engine, s, form.image_bytes, form.audio_bytes, params, form.raw_rate,
        )  # fmt: skip
        session_id = new_session_id(s.node_id)
        directory = s.storage_dir / session_id
        try:
            session = await loop.run_in_executor(
                registry.executor.blocking, open_progressive,
                session_id, directory, avatar, params, timeline, registry.engine, registry.executor, s,
            )  # fmt: skip
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, directory, True)
            raise
        registry.adopt(session)
        claim(session_id)
    grants = auth.authenticator_of(request.app).grants(session_id)
    return {
        "status": "success",
        "session_id": session_id,
        "hls_url": grants["hls_url"],  # carries the viewer token in its path when auth is on
        "session_token": grants["session_token"],
        "viewer_token": grants["viewer_token"],
        "viewer_url": grants["viewer_url"],
        "message": "rendering: the playlist grows segment by segment and ends with #EXT-X-ENDLIST",
        "status_url": f"/api/audio-driven/chunked/status/{session_id}",
        "recording_url": f"/api/audio-driven/chunked/session/{session_id}/recording.mp4",
        "preview_url": f"/api/audio-driven/chunked/preview/{session_id}",
        "audio_seconds": round(timeline.seconds, 3),
        "total_frames": timeline.frames,
        "width": avatar.size[0],
        "height": avatar.size[1],
        "engine": session.engine_name,
    }


@router.get(
    "/chunked/session/{session_id}/recording.mp4",
    response_class=FileResponse,
    dependencies=[Depends(auth.control)],
)
async def session_recording(request: Request, session_id: str) -> FileResponse:
    registry = _registry(request)
    session = registry.get(session_id)  # a GET does not extend the session's life
    loop = asyncio.get_running_loop()

    async def produce(workdir: Path) -> Path:
        return await loop.run_in_executor(
            registry.executor.blocking,
            write_recording,
            session.directory,
            session.sink,
            workdir / "recording.mp4",
        )

    path, cleanup = await _in_scratch_dir(request, produce)
    return FileResponse(
        path,
        media_type="video/mp4",
        filename=f"facestream-{session.session_id[:8]}.mp4",
        headers={"Cache-Control": "no-store"},
        background=cleanup,
    )


@router.get("/chunked/preview/{session_id}", dependencies=[Depends(auth.control)])
async def session_preview(request: Request, session_id: str) -> Response:
    session = _registry(request).get(session_id)
    rgb = session.avatar.image

    def encode() -> bytes:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    body = await asyncio.to_thread(encode)
    return Response(body, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
