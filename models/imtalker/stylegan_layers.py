"""StyleGAN2-style layers used by the renderer's motion encoder and motion decoder.

Weights are stored unscaled and multiplied by a fan-in constant at run time (equalised learning
rate), which is why the checkpoints hold std-1 weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)


def blur_kernel(gain: float = 1.0) -> torch.Tensor:
    """Separable [1,3,3,1] low-pass, normalised to sum ``gain``."""
    taps = torch.tensor(_BLUR_TAPS, dtype=torch.float32)
    kernel = taps[None, :] * taps[:, None]
    return kernel / kernel.sum() * gain


class Blur(nn.Module):
    """Zero-pad by ``pad`` then correlate each channel with the 4x4 blur kernel."""

    def __init__(self, pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.pad = pad
        self.register_buffer("kernel", blur_kernel(gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        weight = self.kernel.flip(0, 1)[None, None].expand(channels, 1, 4, 4)
        return F.conv2d(x, weight, groups=channels)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias, LReLU(0.2), gain sqrt(2) (keeps activations at unit variance)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias, 0.2) * math.sqrt(2.0)


def conv_layer(in_ch: int, out_ch: int, downsample: bool) -> nn.Sequential:
    """3x3 equalised conv + fused activation; the downsampling form blurs then strides by 2."""
    if downsample:
        return nn.Sequential(
            Blur((2, 2)),
            EqualConv2d(in_ch, out_ch, 3, stride=2, padding=0, bias=False),
            FusedLeakyReLU(out_ch),
        )
    return nn.Sequential(EqualConv2d(in_ch, out_ch, 3, padding=1, bias=False), FusedLeakyReLU(out_ch))


class ResBlock(nn.Module):
    """Downsampling residual block of the motion encoder (no 1/sqrt(2) on the sum)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = conv_layer(in_ch, in_ch, downsample=False)
        self.conv2 = conv_layer(in_ch, out_ch, downsample=True)
        self.skip = conv_layer(in_ch, out_ch, downsample=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + self.skip(x)


class ModulatedConv2d(nn.Module):
    """3x3 conv whose weights are scaled per input channel by a style, then demodulated."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.upsample = in_ch, out_ch, upsample
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, 3, 3))
        self.scale = 1.0 / math.sqrt(in_ch * 9)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        if upsample:
            self.blur = Blur((1, 1), gain=4.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        s = self.modulation(style).view(batch, 1, self.in_ch, 1, 1)
        weight = self.scale * self.weight * s
        weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        x = x.reshape(1, batch * self.in_ch, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * self.in_ch, self.out_ch, 3, 3)
            out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=batch)
            out = self.blur(out.view(batch, self.out_ch, out.shape[-2], out.shape[-1]))
            return out
        weight = weight.view(batch * self.out_ch, self.in_ch, 3, 3)
        out = F.conv2d(x, weight, padding=1, groups=batch)
        return out.view(batch, self.out_ch, height, width)


class NoiseInjection(nn.Module):
    """Holds the checkpoint's noise gain; inference passes no noise, so it is the identity."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, style_dim, upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x, style))
