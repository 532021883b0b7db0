"""The CPU mesh-warp renderer: landmarks-driven piecewise-affine warp + synthesized mouth/lids."""

from models.render.renderer import FaceRenderer

__all__ = ["FaceRenderer"]
