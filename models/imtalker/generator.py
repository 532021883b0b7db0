"""Audio-driven motion generator: projected conditions + Euler ODE over the flow-matching transformer.

``sample_window`` is the batched core (one 50-frame window for B sessions, each with its own
context); ``FMGenerator.sample`` reproduces the reference's whole-clip call on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.imtalker.flow_transformer import (
    CONTEXT_FRAMES,
    MOTION_DIM,
    WINDOW_FRAMES,
    FlowMatchingTransformer,
)
from models.imtalker.sizes import REAL, ImTalkerSize

CONDITIONS = ("a", "pose", "cam", "gaze")  # summation order of the reference


def projection(in_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, MOTION_DIM), nn.LayerNorm(MOTION_DIM), nn.SiLU())


@dataclass
class WindowContext:
    """The last 10 frames of the previous window: codes and projected conditions, (B, 10, 32) each."""

    prev_x: torch.Tensor
    prev_a: torch.Tensor
    prev_pose: torch.Tensor
    prev_cam: torch.Tensor
    prev_gaze: torch.Tensor

    @classmethod
    def zeros(cls, batch: int, device: torch.device | str) -> WindowContext:
        z = torch.zeros(batch, CONTEXT_FRAMES, MOTION_DIM, device=device)
        return cls(z, z, z, z, z)

    @classmethod
    def stack(cls, contexts: list[WindowContext]) -> WindowContext:
        return cls(*(torch.cat([getattr(c, f) for c in contexts]) for f in _CONTEXT_FIELDS))

    def split(self) -> list[WindowContext]:
        parts = [getattr(self, f).split(1) for f in _CONTEXT_FIELDS]
        return [WindowContext(*fields) for fields in zip(*parts, strict=True)]


_CONTEXT_FIELDS = ("prev_x", "prev_a", "prev_pose", "prev_cam", "prev_gaze")


def ode_grid(nfe: int, device: torch.device | str) -> torch.Tensor:
    if nfe < 2:
        raise ValueError(f"nfe must be >= 2 (grid points of the Euler solver), got {nfe}")
    return torch.linspace(0.0, 1.0, nfe, device=device)


class FMGenerator(nn.Module):
    """Holds the transformer and the four condition projections (keys as in ``generator.ckpt``)."""

    def __init__(self, size: ImTalkerSize = REAL) -> None:
        super().__init__()
        self.fmt = FlowMatchingTransformer(size.fmt_hidden, size.fmt_heads, size.fmt_depth)
        self.audio_projection = projection(size.audio_dim)
        self.gaze_projection = projection(2)
        self.pose_projection = projection(3)
        self.cam_projection = projection(3)

    def velocity(
        self,
        t: torch.Tensor,
        x: torch.Tensor,
        ref_x: torch.Tensor,
        cond: dict[str, torch.Tensor],
        context: WindowContext,
        cfg_scale: float,
    ) -> torch.Tensor:
        """CFG-combined velocity (B, 60, 32); the unconditional branch zeroes the window's audio."""
        cond_x = torch.cat([context.prev_x, x], dim=1)
        full = {name: torch.cat([getattr(context, f"prev_{name}"), cond[name]], dim=1) for name in CONDITIONS}
        if cfg_scale == 1.0:
            summed = full["a"] + full["pose"] + full["cam"] + full["gaze"]
            return self.fmt(t.reshape(-1), cond_x, ref_x, summed)
        silent = torch.cat([context.prev_a, torch.zeros_like(cond["a"])], dim=1)
        audio = torch.cat([silent, full["a"]])
        doubled = {name: torch.cat([full[name], full[name]]) for name in ("pose", "cam", "gaze")}
        summed = audio + doubled["pose"] + doubled["cam"] + doubled["gaze"]
        out = self.fmt(t.reshape(-1), torch.cat([cond_x, cond_x]), torch.cat([ref_x, ref_x]), summed)
        uncond, conditional = out.chunk(2)
        return uncond + cfg_scale * (conditional - uncond)

    @torch.no_grad()
    def sample_window(
        self,
        noise: torch.Tensor,
        ref_x: torch.Tensor,
        cond: dict[str, torch.Tensor],
        context: WindowContext,
        nfe: int,
        cfg_scale: float,
        trace: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Integrate ``noise`` (B, 50, 32) from t=0 to 1 with ``nfe`` Euler grid points.

        ``cond`` maps a/pose/cam/gaze to projected (B, 50, 32) conditions of this window.
        """
        grid = ode_grid(nfe, noise.device)
        z = noise
        for k in range(nfe - 1):
            v = self.velocity(grid[k], z, ref_x, cond, context, cfg_scale)
            if trace is not None:
                trace.append((grid[k], z, v))
            z = z + (grid[k + 1] - grid[k]) * v[:, CONTEXT_FRAMES:]
        return z

    def project(
        self,
        audio_features: torch.Tensor,
        pose: torch.Tensor | None = None,
        gaze: torch.Tensor | None = None,
        cam: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Raw per-frame inputs (B, T, d) -> projected conditions; absent ones are zero vectors."""
        batch, frames, _ = audio_features.shape
        zeros = audio_features.new_zeros(batch, frames, MOTION_DIM)
        return {
            "a": self.audio_projection(audio_features),
            "pose": zeros if pose is None else self.pose_projection(pose),
            "gaze": zeros if gaze is None else self.gaze_projection(gaze),
            "cam": zeros if cam is None else self.cam_projection(cam),
        }

    @torch.no_grad()
    def sample(
        self,
        cond: dict[str, torch.Tensor],
        ref_x: torch.Tensor,
        noises: list[torch.Tensor],
        nfe: int,
        cfg_scale: float,
        context: WindowContext | None = None,
        trace: list | None = None,
    ) -> tuple[torch.Tensor, WindowContext]:
        """Whole clip of T projected frames, in 50-frame windows (last one padded by repeating its
        last frame), one noise tensor per window. Returns codes (B, T, 32) and the next context."""
        frames = cond["a"].shape[1]
        batch = ref_x.shape[0]
        windows = -(-frames // WINDOW_FRAMES)
        if len(noises) < windows:
            raise ValueError(f"{windows} windows need {windows} noise tensors, got {len(noises)}")
        context = context or WindowContext.zeros(batch, ref_x.device)
        outputs = []
        for w in range(windows):
            piece = {
                name: pad_window(value[:, w * WINDOW_FRAMES : (w + 1) * WINDOW_FRAMES])
                for name, value in cond.items()
            }
            codes = self.sample_window(noises[w], ref_x, piece, context, nfe, cfg_scale, trace)
            outputs.append(codes)
            context = WindowContext(
                codes[:, -CONTEXT_FRAMES:],
                *(piece[n][:, -CONTEXT_FRAMES:] for n in ("a", "pose", "cam", "gaze")),
            )
        codes = torch.cat(outputs, dim=1)[:, :frames]
        tail = WindowContext(
            codes[:, -CONTEXT_FRAMES:], *(cond[n][:, -CONTEXT_FRAMES:] for n in ("a", "pose", "cam", "gaze"))
        )
        return codes, tail


def pad_window(values: torch.Tensor) -> torch.Tensor:
    """Pad (B, n<=50, d) to 50 frames by repeating the last frame."""
    missing = WINDOW_FRAMES - values.shape[1]
    if missing == 0:
        return values
    return torch.cat([values, values[:, -1:].expand(-1, missing, -1)], dim=1)
