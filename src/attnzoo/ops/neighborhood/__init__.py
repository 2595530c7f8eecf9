"""Neighborhood attention (arXiv 2403.04690): functional ops with reference, tiled and FlexAttention implementations."""

from attnzoo.ops.neighborhood.functional import (
    neighborhood_attention_1d,
    neighborhood_attention_2d,
    neighborhood_attention_3d,
)

__all__ = ["neighborhood_attention_1d", "neighborhood_attention_2d", "neighborhood_attention_3d"]
