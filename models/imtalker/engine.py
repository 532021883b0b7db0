"""The IMTalker neural engine behind the ``models.engines.base.Engine`` interface.

Per session: the portrait is cropped and encoded once (appearance, identity, reference motion
code and maps). Per 2 s window of timeline audio (speech or silence): motion codes are sampled
with the previous window's context, then rendered frame by frame. No blending of the codes
towards the reference (the published endpoints' 0.6/0.4 damping) is applied.

Speed options (all default to the reference-exact behaviour): ``dtype`` runs every model call
under autocast in bf16/fp16 (weights stay fp32, so numerics-sensitive ops keep fp32 inputs);
``compile_mode`` wraps the fixed-shape renderer in ``torch.compile`` (render batches are padded
to ``render_batch`` so it compiles once); ``first_window_frames`` makes a session's first
window shorter than 2 s, so its first frames are final after 0.4-2 s of timeline audio
instead of 2 s (later windows keep the 2 s length and carry the context as usual);
``push_audio_many`` samples several sessions' windows in one batched call.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.errors import EngineUnavailableError, InvalidAudioError
from models.imtalker.checkpoints import load_models
from models.imtalker.flow_transformer import CONTEXT_FRAMES, WINDOW_FRAMES
from models.imtalker.generator import WindowContext
from models.imtalker.motion_stream import WindowRequest, generate_windows, style_conditions
from models.imtalker.renderer import PortraitEncoding
from models.imtalker.sizes import REAL, ImTalkerSize
from models.types import SAMPLES_PER_FRAME, Avatar, EngineParams, VideoFrame

SPEECH_RMS = 1e-3
"""Per-frame RMS above which a frame counts as speech-driven (about -60 dBFS)."""

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def resolve_device(device: str | None) -> torch.device:
    if device:
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailableError(f"device {device!r} requested but CUDA is not available")
        return resolved
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """``fp32``/``bf16``/``fp16`` (or the long names, or a torch dtype) -> torch dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"unsupported IMTalker dtype {dtype}")
        return dtype
    key = str(dtype).strip().lower()
    if key not in DTYPES:
        raise ValueError(f"unknown IMTalker dtype {dtype!r}; choose fp32, bf16 or fp16")
    return DTYPES[key]


class ImTalkerEngine:
    """Shared by all sessions; model calls are serialised by a lock so one device is never
    oversubscribed by concurrent sessions (batching across sessions goes through
    ``push_audio_many`` / ``generate_windows``)."""

    name = "imtalker"

    def __init__(
        self,
        weights_dir: Path,
        device: str | None = None,
        render_batch: int | None = None,
        dtype: str | torch.dtype | None = "fp32",
        compile_mode: str | None = None,
        first_window_frames: int = WINDOW_FRAMES,
        size: ImTalkerSize = REAL,
    ) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        if not CONTEXT_FRAMES <= first_window_frames <= WINDOW_FRAMES:
            # The next window's context is the previous window's last 10 frames.
            raise ValueError(
                f"first_window_frames must be in [{CONTEXT_FRAMES}, {WINDOW_FRAMES}], "
                f"got {first_window_frames}"
            )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        audio, generator, renderer = load_models(Path(weights_dir), size)
        self.size = size
        self.audio_encoder = audio.to(self.device)
        self.generator = generator.to(self.device)
        self.renderer = renderer.to(self.device)
        self.render_batch = render_batch or (10 if self.device.type == "cuda" else 2)
        self.first_window_frames = int(first_window_frames)
        self.compile_mode = compile_mode
        self._render: Callable[[torch.Tensor, PortraitEncoding], torch.Tensor] = self.renderer.render
        if compile_mode:
            self._render = torch.compile(self.renderer.render, mode=compile_mode, dynamic=False)
        self.lock = threading.Lock()
        self._landmarker = None

    def precision(self) -> contextlib.AbstractContextManager:
        """The context every model call runs in: autocast to ``dtype``, or nothing for fp32."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def prepare(self, image: np.ndarray, params: EngineParams) -> Avatar:
        from models.face.landmarks import FaceLandmarker
        from models.imtalker.portrait import prepare_portrait

        if self._landmarker is None:
            self._landmarker = FaceLandmarker()
        portrait, landmarks, box = prepare_portrait(image, params.crop, self._landmarker)
        source_size = (int(np.asarray(image).shape[1]), int(np.asarray(image).shape[0]))
        encoding = self.encode_portrait(portrait)
        return Avatar(
            image=portrait, landmarks=landmarks, crop_box=box, source_size=source_size, engine_data=encoding
        )

    @torch.no_grad()
    def encode_portrait(self, rgb: np.ndarray) -> PortraitEncoding:
        """The 512 px crop (RGB uint8) -> the renderer's per-session encoding."""
        with self.lock, self.precision():
            return self.renderer.encode_portrait(self.image_tensor(rgb))

    def image_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        image = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        side = self.size.render_size
        if image.shape[-1] != side or image.shape[-2] != side:  # only for non-published sizes
            image = F.interpolate(image, size=(side, side), mode="bilinear", antialias=True)
        return image

    def open_stream(self, avatar: Avatar, params: EngineParams) -> ImTalkerStream:
        if not isinstance(avatar.engine_data, PortraitEncoding):
            raise ValueError("avatar was not prepared by the IMTalker engine")
        return ImTalkerStream(self, avatar.engine_data, params)

    @torch.no_grad()
    def render_frames(self, codes: torch.Tensor, portrait: PortraitEncoding) -> np.ndarray:
        """Codes (n, 32) -> (n, H, W, 3) uint8, truncating clip(0,1)*255 like the reference."""
        frames = []
        for chunk in codes.split(self.render_batch):
            count = chunk.shape[0]
            if self.compile_mode and count < self.render_batch:  # keep the compiled shape fixed
                chunk = torch.cat([chunk, chunk[-1:].expand(self.render_batch - count, -1)])
            with self.lock, self.precision():
                images = self._render(chunk, portrait)[:count]
            frames.append(
                (images.float().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            )
        return np.concatenate(frames)

    def push_audio_many(
        self, streams: Sequence[ImTalkerStream], pcms: Sequence[np.ndarray]
    ) -> list[list[VideoFrame]]:
        """``push_audio`` for several sessions at once: each round takes every stream's next
        complete window and samples all of them (per nfe/cfg pair) in one batched call, then
        renders each session's frames. Frames per stream equal what ``push_audio`` gives."""
        if len(streams) != len(pcms):
            raise ValueError(f"{len(streams)} streams but {len(pcms)} audio arrays")
        if len({id(s) for s in streams}) != len(streams):
            raise ValueError("a stream appears twice; push its audio as one array")
        for stream, pcm in zip(streams, pcms, strict=True):
            stream.accept(pcm)
        out: list[list[VideoFrame]] = [[] for _ in streams]
        while True:
            ready = [(i, s, s.take_window()) for i, s in enumerate(streams) if s.window_ready()]
            if not ready:
                return out
            groups: dict[tuple[int, float], list[tuple[int, ImTalkerStream, np.ndarray]]] = {}
            for item in ready:
                key = (int(item[1].params.nfe), float(item[1].params.cfg_scale))
                groups.setdefault(key, []).append(item)
            for (nfe, cfg_scale), members in groups.items():
                for (index, stream, audio), (codes, context) in zip(
                    members, self.sample_windows([(s, a) for _, s, a in members], nfe, cfg_scale), strict=True
                ):
                    stream.context = context
                    out[index] += stream.frames_from_codes(codes[0], audio)

    @torch.no_grad()
    def sample_windows(
        self, jobs: Sequence[tuple[ImTalkerStream, np.ndarray]], nfe: int, cfg_scale: float
    ) -> list[tuple[torch.Tensor, WindowContext]]:
        """Motion codes for one window of each (stream, audio), batched; contexts not applied."""
        requests = [stream.window_request(audio) for stream, audio in jobs]
        with self.lock, self.precision():
            return generate_windows(self.audio_encoder, self.generator, requests, nfe, cfg_scale)


class ImTalkerStream:
    """One session's timeline. Frame k covers samples [640k, 640k + 640)."""

    def __init__(self, engine: ImTalkerEngine, portrait: PortraitEncoding, params: EngineParams) -> None:
        if params.nfe < 2:
            raise ValueError(f"nfe must be >= 2, got {params.nfe}")
        self.engine = engine
        self.portrait = portrait
        self.params = params
        self.context = WindowContext.zeros(1, engine.device)
        self.noise = torch.Generator().manual_seed(int(params.seed))  # CPU stream: device-independent
        self.pose, self.gaze = style_conditions(params, engine.device)
        self.pending = np.zeros(0, dtype=np.float32)
        self.next_index = 0
        self.windows_done = 0
        self.finished = False

    @property
    def lookahead_frames(self) -> int:
        """The worst case over the timeline: a full 2 s window (a short first window only makes
        the first frames final sooner than this promise)."""
        return WINDOW_FRAMES - 1

    @property
    def window_samples(self) -> int:
        """Audio the next window needs: the first window may be shorter, every later one is 2 s."""
        frames = self.engine.first_window_frames if self.windows_done == 0 else WINDOW_FRAMES
        return frames * SAMPLES_PER_FRAME

    def accept(self, pcm: np.ndarray) -> None:
        """Validate and queue timeline audio without running any model."""
        if self.finished:
            raise RuntimeError("push_audio after flush/close: the timeline has ended")
        samples = np.asarray(pcm)
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise InvalidAudioError(
                f"expected 1-D float PCM, got shape {samples.shape} dtype {samples.dtype}"
            )
        if not np.isfinite(samples).all():
            raise InvalidAudioError("audio contains NaN/Inf")
        self.pending = np.concatenate([self.pending, samples.astype(np.float32)])

    def window_ready(self) -> bool:
        return self.pending.shape[0] >= self.window_samples

    def take_window(self) -> np.ndarray:
        need = self.window_samples
        window, self.pending = self.pending[:need], self.pending[need:]
        self.windows_done += 1
        return window

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        return self.engine.push_audio_many([self], [pcm])[0]

    def flush(self) -> list[VideoFrame]:
        if self.finished:
            return []
        frames = self._run_window(self.pending) if self.pending.shape[0] else []
        self.pending = np.zeros(0, dtype=np.float32)
        self.finished = True
        return frames

    def close(self) -> None:
        self.finished = True
        self.pending = np.zeros(0, dtype=np.float32)

    def window_request(self, audio: np.ndarray) -> WindowRequest:
        noise = torch.randn(1, WINDOW_FRAMES, 32, generator=self.noise).to(self.engine.device)
        return WindowRequest(audio, self.portrait.motion_code, self.context, noise, self.pose, self.gaze)

    def _run_window(self, audio: np.ndarray) -> list[VideoFrame]:
        [(codes, context)] = self.engine.sample_windows(
            [(self, audio)], self.params.nfe, self.params.cfg_scale
        )
        self.windows_done += 1
        self.context = context
        return self.frames_from_codes(codes[0], audio)

    def frames_from_codes(self, codes: torch.Tensor, audio: np.ndarray) -> list[VideoFrame]:
        images = self.engine.render_frames(codes, self.portrait)
        frames = []
        for k, image in enumerate(images):
            chunk = audio[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME]
            speech = bool(chunk.size and float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) > SPEECH_RMS)
            frames.append(VideoFrame(index=self.next_index, image=np.ascontiguousarray(image), speech=speech))
            self.next_index += 1
        return frames


def load_engine(
    weights_dir: Path | str | None,
    device: str | None = None,
    dtype: str | None = None,
    compile_mode: str | None = None,
    first_window_frames: int | None = None,
) -> ImTalkerEngine:
    """The engine, or EngineUnavailableError naming what is missing (or a bad option)."""
    if weights_dir is None:
        raise EngineUnavailableError("the IMTalker engine needs its checkpoints folder (--weights-dir DIR)")
    folder = Path(weights_dir)
    if not folder.is_dir():
        raise EngineUnavailableError(f"IMTalker weights folder {folder} does not exist")
    try:
        resolve_dtype(dtype)
    except ValueError as exc:
        raise EngineUnavailableError(str(exc)) from exc
    return ImTalkerEngine(
        folder,
        device=device,
        dtype=dtype or "fp32",
        compile_mode=compile_mode or None,
        first_window_frames=first_window_frames or WINDOW_FRAMES,
    )


create_engine = load_engine
