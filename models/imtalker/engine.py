"""The IMTalker neural engine behind the ``models.engines.base.Engine`` interface.

Per session: the portrait is cropped and encoded once (appearance, identity, reference motion
code and maps). Per 2 s window of timeline audio (speech or silence): motion codes are sampled
with the previous window's context, then rendered frame by frame. No blending of the codes
towards the reference (the published endpoints' 0.6/0.4 damping) is applied.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from models.errors import EngineUnavailableError, InvalidAudioError
from models.imtalker.checkpoints import load_models
from models.imtalker.flow_transformer import WINDOW_FRAMES
from models.imtalker.generator import WindowContext
from models.imtalker.motion_stream import WINDOW_SAMPLES, WindowRequest, generate_windows, style_conditions
from models.imtalker.renderer import PortraitEncoding
from models.types import SAMPLES_PER_FRAME, Avatar, EngineParams, VideoFrame

SPEECH_RMS = 1e-3
"""Per-frame RMS above which a frame counts as speech-driven (about -60 dBFS)."""


def resolve_device(device: str | None) -> torch.device:
    if device:
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailableError(f"device {device!r} requested but CUDA is not available")
        return resolved
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ImTalkerEngine:
    """Shared by all sessions; model calls are serialised by a lock so one device is never
    oversubscribed by concurrent sessions (batching across sessions goes through
    ``generate_windows``)."""

    name = "imtalker"

    def __init__(self, weights_dir: Path, device: str | None = None, render_batch: int | None = None) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        audio, generator, renderer = load_models(Path(weights_dir))
        self.audio_encoder = audio.to(self.device)
        self.generator = generator.to(self.device)
        self.renderer = renderer.to(self.device)
        self.render_batch = render_batch or (10 if self.device.type == "cuda" else 2)
        self.lock = threading.Lock()
        self._landmarker = None

    def prepare(self, image: np.ndarray, params: EngineParams) -> Avatar:
        from models.face.landmarks import FaceLandmarker
        from models.imtalker.portrait import prepare_portrait

        if self._landmarker is None:
            self._landmarker = FaceLandmarker()
        portrait, landmarks, box = prepare_portrait(image, params.crop, self._landmarker)
        source_size = (int(np.asarray(image).shape[1]), int(np.asarray(image).shape[0]))
        with self.lock:
            encoding = self.renderer.encode_portrait(self.image_tensor(portrait))
        return Avatar(
            image=portrait, landmarks=landmarks, crop_box=box, source_size=source_size, engine_data=encoding
        )

    def image_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)[None].float() / 255.0

    def open_stream(self, avatar: Avatar, params: EngineParams) -> ImTalkerStream:
        if not isinstance(avatar.engine_data, PortraitEncoding):
            raise ValueError("avatar was not prepared by the IMTalker engine")
        return ImTalkerStream(self, avatar.engine_data, params)

    @torch.no_grad()
    def render_frames(self, codes: torch.Tensor, portrait: PortraitEncoding) -> np.ndarray:
        """Codes (n, 32) -> (n, 512, 512, 3) uint8, truncating clip(0,1)*255 like the reference."""
        frames = []
        for chunk in codes.split(self.render_batch):
            with self.lock:
                images = self.renderer.render(chunk, portrait)
            frames.append((images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(frames)


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
        self.finished = False

    @property
    def lookahead_frames(self) -> int:
        return WINDOW_FRAMES - 1

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
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
        frames: list[VideoFrame] = []
        while self.pending.shape[0] >= WINDOW_SAMPLES:
            window, self.pending = self.pending[:WINDOW_SAMPLES], self.pending[WINDOW_SAMPLES:]
            frames += self._run_window(window)
        return frames

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
        request = self.window_request(audio)
        with self.engine.lock:
            [(codes, context)] = generate_windows(
                self.engine.audio_encoder,
                self.engine.generator,
                [request],
                self.params.nfe,
                self.params.cfg_scale,
            )
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


def load_engine(weights_dir: Path | str | None, device: str | None = None) -> ImTalkerEngine:
    """The engine, or EngineUnavailableError naming what is missing."""
    if weights_dir is None:
        raise EngineUnavailableError("the IMTalker engine needs a weights folder (--weights DIR)")
    folder = Path(weights_dir)
    if not folder.is_dir():
        raise EngineUnavailableError(f"IMTalker weights folder {folder} does not exist")
    return ImTalkerEngine(folder, device=device)


create_engine = load_engine
