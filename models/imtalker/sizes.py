"""Network sizes: the published checkpoints' widths, and a tiny size with the same topology.

Why: the engine, the conformance tests and the GPU benchmark run the real size; a CPU-only
machine cannot render even one real window in a test's time budget. ``TINY`` keeps every
module, key name, resolution ratio and code path of ``REAL`` (so batching, precision and the
streaming logic are exercised end to end) but divides channel widths and the render size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImTalkerSize:
    """Widths of the three networks. ``render_size`` must be a multiple of 128: the motion
    decoder's constant is ``render_size / 128`` px and the renderer works on maps of
    ``render_size / 2**k`` px."""

    name: str = "real"
    render_size: int = 512
    width_divisor: int = 1  # renderer channel widths are divided by this
    heads: int = 8  # renderer attention heads
    fmt_hidden: int = 512  # flow-matching transformer width
    fmt_heads: int = 8
    fmt_depth: int = 8
    audio_dim: int = 768  # wav2vec2 hidden size
    audio_layers: int = 12
    audio_heads: int = 12
    audio_ffn: int = 3072
    audio_conv_dim: int = 512

    def __post_init__(self) -> None:
        if self.render_size % 128:
            raise ValueError(f"render_size must be a multiple of 128, got {self.render_size}")

    def ch(self, channels: int) -> int:
        """A renderer channel width of the real network, at this size."""
        return max(1, channels // self.width_divisor)

    def res(self, resolution: int) -> int:
        """A map resolution of the real (512 px) network, at this size."""
        return resolution * self.render_size // 512

    def wav2vec2_overrides(self) -> dict[str, object]:
        """Config fields that differ from ``Wav2Vec2Config()`` defaults (empty at the real size)."""
        if self == REAL:
            return {}
        return {
            "hidden_size": self.audio_dim,
            "num_hidden_layers": self.audio_layers,
            "num_attention_heads": self.audio_heads,
            "intermediate_size": self.audio_ffn,
            "conv_dim": [self.audio_conv_dim] * 7,
            "output_hidden_size": self.audio_dim,
        }


REAL = ImTalkerSize()
TINY = ImTalkerSize(
    name="tiny",
    render_size=128,
    width_divisor=8,
    heads=2,
    fmt_hidden=64,
    fmt_heads=2,
    fmt_depth=2,
    audio_dim=64,
    audio_layers=2,
    audio_heads=2,
    audio_ffn=128,
    audio_conv_dim=64,
)
SIZES = {size.name: size for size in (REAL, TINY)}
