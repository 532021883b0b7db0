"""Motion decoder: a 32-d (identity-adapted) motion code -> four motion maps (8..64 px)."""

from __future__ import annotations

import torch
from torch import nn

from models.imtalker.sizes import REAL, ImTalkerSize
from models.imtalker.stylegan_layers import StyledConv

# (in, out, upsample) of the 13 styled convs; maps are the outputs of layers 3, 6, 9, 12 (0-based).
_LAYERS = (
    (32, 512, False),
    (512, 512, True), (512, 512, False), (512, 512, False),
    (512, 512, True), (512, 512, False), (512, 512, False),
    (512, 256, True), (256, 256, False), (256, 256, False),
    (256, 128, True), (128, 128, False), (128, 128, False),
)  # fmt: skip
_OUTPUT_AFTER = (3, 6, 9, 12)


class MotionDecoder(nn.Module):
    def __init__(self, style_dim: int = 32, size: ImTalkerSize = REAL) -> None:
        super().__init__()
        side = size.res(4)
        self.const = nn.Parameter(torch.randn(1, size.ch(32), side, side))
        self.style_conv_layers = nn.ModuleList(
            StyledConv(size.ch(i), size.ch(o), style_dim, up) for i, o, up in _LAYERS
        )

    def forward(self, code: torch.Tensor) -> list[torch.Tensor]:
        x = self.const.expand(code.shape[0], -1, -1, -1)
        maps = []
        for index, layer in enumerate(self.style_conv_layers):
            x = layer(x, code)
            if index in _OUTPUT_AFTER:
                maps.append(x)
        return maps
