"""IMT renderer: encode a portrait once, then decode one frame per motion code."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.imtalker.frame_decoder import SynthesisNetwork
from models.imtalker.motion_decoder import MotionDecoder
from models.imtalker.motion_transfer import MotionTransfer
from models.imtalker.renderer_encoders import IdentityAdaptive, IdentityEncoder, MotionEncoder
from models.imtalker.sizes import REAL, ImTalkerSize

RENDER_SIZE = 512


@dataclass
class PortraitEncoding:
    """Everything the renderer needs about the reference portrait, computed once per session."""

    appearance: list[torch.Tensor]  # f_r: 6 maps, coarse (8 px) to fine (256 px)
    identity: torch.Tensor  # g_r (B, 512)
    motion_code: torch.Tensor  # t_r (B, 32): the generator's ref_x
    reference_maps: list[torch.Tensor]  # m_r: motion maps of the portrait's own (adapted) code


class IMTRenderer(nn.Module):
    """Input and output are ``size.render_size`` px square (512 for the published checkpoint)."""

    def __init__(self, size: ImTalkerSize = REAL) -> None:
        super().__init__()
        self.size = size
        self.dense_feature_encoder = IdentityEncoder(size)
        self.latent_token_encoder = MotionEncoder(size)
        self.latent_token_decoder = MotionDecoder(size=size)
        self.adapt = IdentityAdaptive(size)
        self.imt = MotionTransfer(size)
        self.frame_decoder = SynthesisNetwork(size)

    @torch.no_grad()
    def encode_portrait(self, image: torch.Tensor) -> PortraitEncoding:
        """``image``: (B, 3, 512, 512) RGB in [0, 1]."""
        appearance, identity = self.dense_feature_encoder(image)
        code = self.latent_token_encoder(image)
        reference_maps = self.latent_token_decoder(self.adapt(code, identity))
        return PortraitEncoding(appearance, identity, code, reference_maps)

    @torch.no_grad()
    def motion_maps(self, codes: torch.Tensor, identity: torch.Tensor) -> list[torch.Tensor]:
        return self.latent_token_decoder(self.adapt(codes, identity.expand(codes.shape[0], -1)))

    @torch.no_grad()
    def decode(
        self,
        current_maps: list[torch.Tensor],
        reference_maps: list[torch.Tensor],
        appearance: list[torch.Tensor],
        best_key: torch.Tensor | None = None,
        probes: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Frames (B, 3, 512, 512) in (0, 1); ``best_key`` optionally injects the 64 px argmax."""
        batch = current_maps[0].shape[0]
        reference_maps = [m.expand(batch, -1, -1, -1) for m in reference_maps]
        appearance = [a.expand(batch, -1, -1, -1) for a in appearance]
        aligned = self.imt(current_maps, reference_maps, appearance, best_key, probes)
        if probes is not None:
            for level, value in enumerate(aligned):
                probes[f"align_{level}"] = value
        return self.frame_decoder(aligned, probes)

    @torch.no_grad()
    def render(self, codes: torch.Tensor, portrait: PortraitEncoding) -> torch.Tensor:
        """Motion codes (B, 32) -> frames (B, 3, 512, 512) in (0, 1)."""
        maps = self.motion_maps(codes, portrait.identity)
        return self.decode(maps, portrait.reference_maps, portrait.appearance)
