"""wav2vec2-base speech features resampled to the 25 fps video rate (IMTalker's audio encoder).

The network is transformers' ``Wav2Vec2Model`` built from a local config (never the hub); what
IMTalker adds is done here: per-clip normalisation, replicate padding to whole frames, and
linear resampling of the conv features to exactly one feature per video frame *before* the
transformer, so attention runs at 25 fps.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.types import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def normalize_waveform(pcm: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the clip (Wav2Vec2FeatureExtractor's do_normalize, float32)."""
    x = np.asarray(pcm, dtype=np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def frame_count(samples: int) -> int:
    """Video frames covered by ``samples`` of 16 kHz audio (a partial frame counts)."""
    return math.ceil(samples * FPS / ENGINE_SAMPLE_RATE)


def pad_to_frames(values: torch.Tensor, frames: int) -> torch.Tensor:
    """Right-pad (B, N) by repeating the last sample up to a multiple of ``frames`` * 640."""
    unit = frames * SAMPLES_PER_FRAME
    remainder = values.shape[-1] % unit
    if remainder == 0:
        return values
    return F.pad(values[:, None], (0, unit - remainder), mode="replicate")[:, 0]


def build_wav2vec2(config_source: Path | dict, overrides: dict[str, object] | None = None) -> nn.Module:
    """An uninitialised ``Wav2Vec2Model`` from a local config file, folder or dict (no downloads);
    ``overrides`` replace config fields (the tiny size's widths)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    if isinstance(config_source, dict):
        config = Wav2Vec2Config(**{**config_source, **(overrides or {})})
    else:
        path = Path(config_source)
        config = Wav2Vec2Config.from_pretrained(str(path), local_files_only=True, **(overrides or {}))
    config.apply_spec_augment = True  # keeps ``masked_spec_embed`` (present in the checkpoints)
    return Wav2Vec2Model(config).eval()


class AudioEncoder(nn.Module):
    def __init__(self, wav2vec2: nn.Module) -> None:
        super().__init__()
        self.wav2vec2 = wav2vec2

    @torch.no_grad()
    def forward(
        self, input_values: torch.Tensor, frames: int, probes: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Normalised waveform (B, N) -> features (B, frames, 768), one per video frame."""
        padded = pad_to_frames(input_values, frames)
        conv = self.wav2vec2.feature_extractor(padded)  # (B, 512, F)
        resampled = F.interpolate(conv, size=frames, mode="linear", align_corners=True).transpose(1, 2)
        hidden, _ = self.wav2vec2.feature_projection(resampled)
        if probes is not None:
            probes.update(conv_features=conv, interp_features=resampled, feature_projection_out=hidden)
        return self.wav2vec2.encoder(hidden).last_hidden_state
