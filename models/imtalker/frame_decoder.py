"""Frame decoder (SynthesisNetwork): six aligned feature maps (8..256 px) -> RGB frame in (0, 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.imtalker.attention_blocks import AttentionStage, UnifiedSwinBlock, UnifiedTransformerBlock
from models.imtalker.conv_blocks import ConvResBlock, up_block
from models.imtalker.sizes import REAL, ImTalkerSize

# (in, out, output resolution) of the five upsampling stages.
_STAGES = ((512, 512, 16), (512, 256, 32), (256, 128, 64), (128, 64, 128), (64, 32, 256))
SWIN_RES_THRESHOLD = 128
WINDOW_SIZE = 8


def attention_stage(
    dim: int, resolution: int, swin_threshold: int = SWIN_RES_THRESHOLD, heads: int = 8
) -> AttentionStage:
    if resolution < swin_threshold:
        return AttentionStage([UnifiedTransformerBlock(dim, resolution * resolution, heads)])
    return AttentionStage(
        [
            UnifiedSwinBlock(dim, resolution, WINDOW_SIZE, shift=0, heads=heads),
            UnifiedSwinBlock(dim, resolution, WINDOW_SIZE, shift=WINDOW_SIZE // 2, heads=heads),
        ]
    )


class SynthesisNetwork(nn.Module):
    def __init__(self, size: ImTalkerSize = REAL) -> None:
        super().__init__()
        stages = [(size.ch(i), size.ch(o), size.res(r)) for i, o, r in _STAGES]
        threshold = size.res(SWIN_RES_THRESHOLD)  # the same stages are windowed at every size
        self.upconv_blocks = nn.ModuleList(up_block(i, o) for i, o, _ in stages)
        self.resblocks = nn.ModuleList(ConvResBlock(2 * o, o) for _, o, _ in stages)
        self.transformer_blocks = nn.ModuleList(
            attention_stage(o, r, threshold, size.heads) for _, o, r in stages
        )
        self.final_conv = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(size.ch(32), 12, 3, padding=1))

    def forward(
        self, aligned: list[torch.Tensor], probes: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        x = aligned[0]
        for stage, (up, res, attn) in enumerate(
            zip(self.upconv_blocks, self.resblocks, self.transformer_blocks, strict=True)
        ):
            x = up(x)
            _probe(probes, f"dec{stage}_upconv", x)
            x = res(torch.cat([x, aligned[stage + 1]], dim=1))
            _probe(probes, f"dec{stage}_resblock", x)
            x = attn(x)
            _probe(probes, f"dec{stage}_attn", x)
        x = self.final_conv(x)
        _probe(probes, "dec_final_conv_prepixelshuffle", x)
        return torch.sigmoid(F.pixel_shuffle(x, 2))


def _probe(probes: dict[str, torch.Tensor] | None, name: str, value: torch.Tensor) -> None:
    if probes is not None:
        probes[name] = value
