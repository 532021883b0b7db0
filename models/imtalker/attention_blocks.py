"""Attention blocks of the renderer: coarse cross-attention and the frame decoder's self-attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, heads, N, C/heads)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class MultiHeadAttention(nn.Module):
    """Plain attention with separate q/k/v projections; returns the probabilities when asked."""

    def __init__(self, dim: int, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_probs: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = split_heads(self.q_proj(query), self.heads)
        k = split_heads(self.k_proj(key), self.heads)
        v = split_heads(self.v_proj(value), self.heads)
        probs = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        out = self.proj(merge_heads(probs @ v))
        return out, (probs if need_probs else None)

    def fused(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Same attention through the fused kernel (no N x N map kept; used where no probs are needed)."""
        q = split_heads(self.q_proj(query), self.heads)
        k = split_heads(self.k_proj(key), self.heads)
        v = split_heads(self.v_proj(value), self.heads)
        return self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def from_tokens(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


class UnifiedTransformerBlock(nn.Module):
    """Global self-attention with learned q/k position embeddings (decoder stages at 16..64 px)."""

    def __init__(self, dim: int, tokens: int, heads: int = 8) -> None:
        super().__init__()
        self.q_pos_embedding = nn.Parameter(torch.zeros(1, tokens, dim))
        self.k_pos_embedding = nn.Parameter(torch.zeros(1, tokens, dim))
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.norm_ffn = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Dropout(0.0), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        tokens = to_tokens(x)
        q = self.norm_q(tokens + self.q_pos_embedding)
        k = self.norm_kv(tokens + self.k_pos_embedding)
        v = self.norm_kv(tokens)
        y = tokens + self.attn.fused(q, k, v)
        y = y + self.mlp(self.norm_ffn(y))
        return from_tokens(y, height, width)


def relative_position_index(window: int) -> torch.Tensor:
    """(w*w, w*w) index into the (2w-1)^2 bias table for query-minus-key offsets."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return delta[..., 0] * (2 * window - 1) + delta[..., 1]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, window*window, C), windows and tokens row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_merge(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    c = windows.shape[-1]
    b = windows.shape[0] // ((height // window) * (width // window))
    x = windows.view(b, height // window, width // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, height, width, c)


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """(windows, N, N) additive mask: -100 between tokens that came from different image regions."""
    labels = torch.zeros(1, height, width, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            labels[:, rows, cols, :] = label
            label += 1
    windows = window_partition(labels, window).squeeze(-1)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        n = q_in.shape[1]
        # Explicit math: on CPU the fused kernel with an additive mask is slower than this.
        q = split_heads(self.q(q_in), self.heads) * self.scale
        k = split_heads(self.k(k_in), self.heads)
        v = split_heads(self.v(v_in), self.heads)
        logits = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        logits = logits + bias.view(n, n, -1).permute(2, 0, 1)[None]
        if mask is not None:
            windows = mask.shape[0]
            logits = logits.view(-1, windows, self.heads, n, n) + mask[None, :, None]
            logits = logits.view(-1, self.heads, n, n)
        return self.proj(merge_heads(torch.softmax(logits, dim=-1) @ v))


class UnifiedSwinBlock(nn.Module):
    """Windowed self-attention with relative position bias (decoder stages at 128 and 256 px)."""

    def __init__(self, dim: int, resolution: int, window: int, shift: int, heads: int = 8) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm_ffn = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))
        if shift > 0:
            self.register_buffer("attn_mask", shifted_window_mask(resolution, resolution, window, shift))
        else:
            self.attn_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        tokens = to_tokens(x)
        q = self.norm_q(tokens).view(b, height, width, c)
        kv = self.norm_kv(tokens).view(b, height, width, c)
        if self.shift:
            q = torch.roll(q, (-self.shift, -self.shift), dims=(1, 2))
            kv = torch.roll(kv, (-self.shift, -self.shift), dims=(1, 2))
        qw, kvw = window_partition(q, self.window), window_partition(kv, self.window)
        attended = window_merge(self.attn(qw, kvw, kvw, self.attn_mask), self.window, height, width)
        if self.shift:
            attended = torch.roll(attended, (self.shift, self.shift), dims=(1, 2))
        y = tokens + attended.reshape(b, height * width, c)
        y = y + self.mlp(self.norm_ffn(y))
        return from_tokens(y, height, width)


class AttentionStage(nn.Module):
    """Holds the ``blocks`` list (keys ``transformer_blocks.i.blocks.j``) and runs them in order."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x
