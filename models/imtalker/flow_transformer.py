"""Flow-matching transformer: predicts the velocity of 60 motion-code frames (10 context + 50).

DiT-style blocks with per-frame adaLN conditioning (audio + pose + gaze + camera + time) and
rotary position embeddings, bidirectional attention over the whole 60-frame span.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CONTEXT_FRAMES = 10
WINDOW_FRAMES = 50
HIDDEN = 512
HEADS = 8
DEPTH = 8
MOTION_DIM = 32
TIME_FREQUENCIES = 256


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=True)

    def tables(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(length, device=device, dtype=self.inv_freq.dtype)
        angles = torch.outer(positions, self.inv_freq)
        emb = torch.cat([angles, angles], dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(u: torch.Tensor) -> torch.Tensor:
    half = u.shape[-1] // 2
    return torch.cat([-u[..., half:], u[..., :half]], dim=-1)


def apply_rotary(u: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return u * cos + rotate_half(u) * sin


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(TIME_FREQUENCIES, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = TIME_FREQUENCIES // 2
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
        )
        args = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class SelfAttention(nn.Module):
    def __init__(self, hidden: int = HIDDEN, heads: int = HEADS) -> None:
        super().__init__()
        self.hidden, self.heads = hidden, heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.hidden // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.hidden))


class FeedForward(nn.Module):
    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def plain_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


class DiTBlock(nn.Module):
    def __init__(self, hidden: int = HIDDEN, heads: int = HEADS) -> None:
        super().__init__()
        self.attn = SelfAttention(hidden, heads)
        self.mlp = FeedForward(hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, h: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        h = h + gate1 * self.attn(modulate(plain_norm(h), shift1, scale1), cos, sin)
        return h + gate2 * self.mlp(modulate(plain_norm(h), shift2, scale2))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.linear = nn.Linear(hidden, MOTION_DIM)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(plain_norm(h), shift, scale))


class TokenEmbedder(nn.Module):
    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * MOTION_DIM, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class FlowMatchingTransformer(nn.Module):
    """Widths default to the published checkpoint (512 wide, 8 heads, 8 blocks)."""

    def __init__(self, hidden: int = HIDDEN, heads: int = HEADS, depth: int = DEPTH) -> None:
        super().__init__()
        self.x_embedder = TokenEmbedder(hidden)
        self.rotary_emb = RotaryEmbedding(hidden // heads)
        self.t_embedder = TimestepEmbedder(hidden)
        self.c_embedder = nn.Linear(MOTION_DIM, hidden)
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads) for _ in range(depth))
        self.decoder = FinalLayer(hidden)

    def forward(
        self,
        t: torch.Tensor,
        x: torch.Tensor,
        ref_x: torch.Tensor,
        conditions: torch.Tensor,
        probes: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Velocity (B, 60, 32) for the 60-frame state ``x`` (context first).

        ``t``: (B_t,) flow time; ``ref_x``: (B, 32) reference code; ``conditions``: (B, 60, 32),
        the sum of the projected audio, pose, gaze and camera conditions (context first).
        """
        frames = x.shape[1]
        tokens = torch.cat([ref_x[:, None].expand(-1, frames, -1), x], dim=-1)
        h = self.x_embedder(tokens)
        t_emb = self.t_embedder(t)
        c_embed = self.c_embedder(conditions)
        c = c_embed + t_emb[:, None]
        cos, sin = self.rotary_emb.tables(frames, x.device)
        if probes is not None:
            probes.update(t_emb=t_emb, x_embed=h, c_embed=c_embed, decoder_in_c=c)
        for index, block in enumerate(self.blocks):
            h = block(h, c, cos, sin)
            if probes is not None:
                probes[f"block{index}"] = h
        return self.decoder(h, c)
