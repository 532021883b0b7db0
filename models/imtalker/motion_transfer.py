"""Implicit motion transfer: align reference appearance to the current motion, level by level.

Coarse levels (8..64 px) attend from current-motion tokens to reference-motion tokens and carry
reference appearance. The fine levels (128, 256 px) reuse the 64 px attention: each cell copies
the appearance block of its best-matching reference cell (argmax), which is numerically fragile,
so callers may inject the indices (conformance tests) or read them back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.imtalker.attention_blocks import MultiHeadAttention, from_tokens, to_tokens
from models.imtalker.sizes import REAL, ImTalkerSize

LEVEL_DIMS = (512, 512, 256, 128, 64, 32)
COARSE_LEVELS = 4
GUIDE_GRID = 64


class CrossAttention(nn.Module):
    """One coarse level (the fine levels have no weights: they reuse the 64 px attention)."""

    def __init__(self, dim: int, heads: int = 8) -> None:
        super().__init__()
        self.block_efc = MultiHeadAttention(dim, heads)

    def forward(
        self, current: torch.Tensor, reference: torch.Tensor, appearance: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, height, width = appearance.shape
        out, probs = self.block_efc(to_tokens(current), to_tokens(reference), to_tokens(appearance), True)
        return from_tokens(out, height, width), probs


def guided_resample(
    appearance: torch.Tensor, best_key: torch.Tensor, guide: int = GUIDE_GRID
) -> torch.Tensor:
    """Average-pool ``appearance`` to the guide grid (64x64 at 512 px), gather rows by
    ``best_key`` (B, guide²), and nearest-upsample back."""
    batch, channels, height, _ = appearance.shape
    ratio = height // guide
    pooled = F.avg_pool2d(appearance, ratio).flatten(2)  # (B, C, guide²)
    gathered = torch.gather(pooled, 2, best_key[:, None, :].expand(batch, channels, -1))
    grid = gathered.view(batch, channels, guide, guide)
    return grid.repeat_interleave(ratio, dim=2).repeat_interleave(ratio, dim=3)


class MotionTransfer(nn.ModuleList):
    """The six ``imt.i`` levels (a ModuleList so checkpoint keys read ``imt.<level>.block_efc``)."""

    def __init__(self, size: ImTalkerSize = REAL) -> None:
        super().__init__(
            [CrossAttention(size.ch(dim), size.heads) for dim in LEVEL_DIMS[:COARSE_LEVELS]]
            + [nn.Identity() for _ in LEVEL_DIMS[COARSE_LEVELS:]]
        )

    def forward(
        self,
        current: list[torch.Tensor],
        reference: list[torch.Tensor],
        appearance: list[torch.Tensor],
        best_key: torch.Tensor | None = None,
        probes: dict[str, torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        aligned = []
        probs = None
        for level in range(COARSE_LEVELS):
            out, probs = self[level](current[level], reference[level], appearance[level])
            aligned.append(out)
            if probes is not None:
                probes[f"attn{level}_headmean"] = probs.mean(dim=1)
        assert probs is not None
        computed = probs.mean(dim=1).argmax(dim=-1)
        if probes is not None:
            probes["attn3_top1_idx"] = computed
        key = computed if best_key is None else best_key.to(computed.device, torch.long)
        guide = current[COARSE_LEVELS - 1].shape[-1]
        aligned.extend(guided_resample(appearance[level], key, guide) for level in range(COARSE_LEVELS, 6))
        return aligned
