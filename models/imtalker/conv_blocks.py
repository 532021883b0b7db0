"""BatchNorm conv blocks of the identity encoder and the frame decoder (eval-mode BN only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BatchNorm(nn.Module):
    """Wrapper that exists only so checkpoint keys read ``...norm.norm.*``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ConvNorm(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = BatchNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class FeatResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(channels)
        self.conv2 = ConvNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.leaky_relu(self.conv1(x), 0.01)
        return F.leaky_relu(self.conv2(hidden) + x, 0.01)


class ConvResBlock(nn.Module):
    """conv-BN-LReLU, [resample], conv, two FeatResBlocks. ``resample``: None, "down" or "up"."""

    def __init__(self, in_ch: int, out_ch: int, resample: str | None = None) -> None:
        super().__init__()
        self.resample = resample
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm = BatchNorm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.feat_res_block1 = FeatResBlock(out_ch)
        self.feat_res_block2 = FeatResBlock(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.leaky_relu(self.norm(self.conv1(x)), 0.01)
        if self.resample == "down":
            x = F.avg_pool2d(x, 2)
        x = self.conv2(x)
        return self.feat_res_block2(self.feat_res_block1(x))


def down_block(in_ch: int, out_ch: int) -> ConvResBlock:
    return ConvResBlock(in_ch, out_ch, "down")


def up_block(in_ch: int, out_ch: int) -> ConvResBlock:
    return ConvResBlock(in_ch, out_ch, "up")
