"""The renderer's three encoders: appearance (f_r, g_r), motion token (t) and identity adaptation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.imtalker.conv_blocks import down_block
from models.imtalker.sizes import REAL, ImTalkerSize
from models.imtalker.stylegan_layers import EqualConv2d, EqualLinear, ResBlock

FEATURE_CHANNELS = (32, 64, 128, 256, 512, 512)
MOTION_DIM = 32
IDENTITY_DIM = 512


class MappingMLP(nn.Module):
    """Four EqualLinear+LReLU(0.2) layers then a final EqualLinear (shared by three modules)."""

    def __init__(self, out_dim: int, width: int = 512) -> None:
        super().__init__()
        self.linear_layers = nn.ModuleList(EqualLinear(width, width) for _ in range(4))
        self.final_linear = EqualLinear(width, out_dim)

    def mapping(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.linear_layers:
            h = F.leaky_relu(layer(h), 0.2)
        return self.final_linear(h)


class IdentityEncoder(MappingMLP):
    """Image -> six appearance maps (coarse to fine: 8..256 px) and a 512-d identity vector."""

    def __init__(self, size: ImTalkerSize = REAL) -> None:
        super().__init__(size.ch(IDENTITY_DIM), size.ch(512))
        ch = [size.ch(c) for c in FEATURE_CHANNELS]
        self.initial_conv = nn.Sequential(nn.Conv2d(3, ch[0], 7, padding=3), nn.BatchNorm2d(ch[0]), nn.ReLU())
        self.down_block_0 = down_block(ch[0], ch[0])
        self.down_blocks = nn.ModuleList(down_block(ch[i], ch[i + 1]) for i in range(5))
        # in the checkpoints, unused by the model
        self.equalconv = EqualConv2d(size.ch(512), size.ch(512), 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.down_block_0(self.initial_conv(image))
        features = [x]
        for block in self.down_blocks:
            x = block(x)
            features.append(x)
        identity = self.mapping(x.mean(dim=(2, 3)))
        return features[::-1], identity


class MotionEncoder(MappingMLP):
    """Image -> 32-d motion token (the code space the generator samples in)."""

    def __init__(self, size: ImTalkerSize = REAL) -> None:
        super().__init__(MOTION_DIM, size.ch(512))
        chans = [size.ch(c) for c in (64, 128, 256, 512, 512, 512)]
        self.conv1 = nn.Conv2d(3, chans[0], 3, padding=1)
        self.res_blocks = nn.ModuleList(ResBlock(chans[i], chans[i + 1]) for i in range(5))
        self.equalconv = EqualConv2d(chans[-1], chans[-1], 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(image), 0.2)
        for block in self.res_blocks:
            x = block(x)
        x = self.equalconv(x)
        return self.mapping(x.mean(dim=(2, 3)))


class IdentityAdaptive(MappingMLP):
    """(motion code, identity) -> identity-adapted motion code that styles the motion decoder."""

    def __init__(self, size: ImTalkerSize = REAL) -> None:
        super().__init__(MOTION_DIM, size.ch(512))
        self.in_layer = EqualLinear(MOTION_DIM + size.ch(IDENTITY_DIM), size.ch(512))

    def forward(self, code: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.in_layer(torch.cat([code, identity], dim=-1)))
