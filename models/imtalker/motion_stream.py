"""Timeline audio -> motion codes, one 50-frame window at a time, with context carried over.

Windows sit at fixed timeline positions (every 32000 samples), each window's audio is
normalised and encoded on its own (as the reference streamer does per 2 s chunk), and the start
noise comes from one seeded generator in window order. So the codes depend only on the timeline
audio and the seed, never on how the audio was chunked when pushed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from models.imtalker.audio_encoder import AudioEncoder, frame_count, normalize_waveform
from models.imtalker.flow_transformer import MOTION_DIM, WINDOW_FRAMES
from models.imtalker.generator import FMGenerator, WindowContext
from models.types import SAMPLES_PER_FRAME, EngineParams

WINDOW_SAMPLES = WINDOW_FRAMES * SAMPLES_PER_FRAME  # 32000


@dataclass
class WindowRequest:
    """One window of one session, ready to be batched with other sessions' windows."""

    audio: np.ndarray  # (n <= 32000,) float32 timeline audio
    ref_x: torch.Tensor  # (1, 32)
    context: WindowContext
    noise: torch.Tensor  # (1, 50, 32)
    pose: torch.Tensor | None  # (1, 50, 3) raw pose condition or None
    gaze: torch.Tensor | None  # (1, 50, 2)


def style_conditions(
    params: EngineParams, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """pose_style (degrees) -> the model's pose input (radians, axis-angle of small rotations);
    gaze_style -> its 2-d gaze input. All-zero styles mean "not given" (a zero condition), as in
    the reference apps' default."""
    pose = gaze = None
    if any(params.pose_style):
        radians = [math.radians(float(v)) for v in params.pose_style]
        pose = (
            torch.tensor(radians, dtype=torch.float32, device=device)
            .view(1, 1, 3)
            .expand(1, WINDOW_FRAMES, 3)
        )
    if any(params.gaze_style):
        values = [float(v) for v in params.gaze_style]
        gaze = (
            torch.tensor(values, dtype=torch.float32, device=device).view(1, 1, 2).expand(1, WINDOW_FRAMES, 2)
        )
    return pose, gaze


@torch.no_grad()
def generate_windows(
    audio_encoder: AudioEncoder,
    generator: FMGenerator,
    requests: list[WindowRequest],
    nfe: int,
    cfg_scale: float,
) -> list[tuple[torch.Tensor, WindowContext]]:
    """Codes (1, frames, 32) and the next context for each request. Requests with windows of the
    same length (every full window; short first or final windows of equal length) run as one
    batch: one audio-encoder call and one ODE solve for all of them (the GPU path)."""
    results: list[tuple[torch.Tensor, WindowContext] | None] = [None] * len(requests)
    by_length: dict[int, list[int]] = {}
    for i, r in enumerate(requests):
        by_length.setdefault(int(r.audio.shape[0]), []).append(i)
    groups = sorted(by_length.values(), key=lambda members: members[0])
    device = requests[0].ref_x.device
    for group in groups:
        batch = [requests[i] for i in group]
        frames = frame_count(batch[0].audio.shape[0])
        values = torch.from_numpy(np.stack([normalize_waveform(r.audio) for r in batch])).to(device)
        features = audio_encoder(values, frames)
        cond = {
            "a": generator.audio_projection(features),
            "pose": _projected(generator.pose_projection, [r.pose for r in batch], frames, device),
            "gaze": _projected(generator.gaze_projection, [r.gaze for r in batch], frames, device),
            "cam": torch.zeros(len(batch), frames, MOTION_DIM, device=device),
        }
        ref_x = torch.cat([r.ref_x for r in batch])
        context = WindowContext.stack([r.context for r in batch])
        noise = torch.cat([r.noise for r in batch])
        codes, tail = generator.sample(cond, ref_x, [noise], nfe, cfg_scale, context)
        for index, item_codes, item_context in zip(group, codes.split(1), tail.split(), strict=True):
            results[index] = (item_codes, item_context)
    return [r for r in results if r is not None]


def _projected(
    projection, raws: list[torch.Tensor | None], frames: int, device: torch.device
) -> torch.Tensor:
    rows = []
    for raw in raws:
        if raw is None:
            rows.append(torch.zeros(1, frames, MOTION_DIM, device=device))
        else:
            rows.append(projection(raw[:, :frames]))
    return torch.cat(rows)
