"""Neighborhood attention on FlexAttention: the shared mask function and the RPB as a ``score_mod``."""

from __future__ import annotations

import torch

from attnzoo.masks import NeighborhoodPattern
from attnzoo.ops.dropin import DropIn
from attnzoo.ops.flex import flex_grid_attention
from attnzoo.ops.neighborhood.reference import rpb_radius
from attnzoo.positional import relative_position_index


def neighborhood_flex(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                      pattern: NeighborhoodPattern, rpb: torch.Tensor | None, scale: float,
                      dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, *grid, D)`` -> ``(B, H, *grid, Dv)`` with compiled FlexAttention; declares no drop-in feature
    (``dropin`` is refused by dispatch before it gets here)."""
    bias = None
    if rpb is not None:
        table, radius = rpb.flatten(1), rpb_radius(pattern)

        def bias(h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            return table[h, relative_position_index(q_idx, kv_idx, pattern.shape, radius, pattern.dilation)]

    return flex_grid_attention(query, key, value, pattern=pattern, scale=scale, bias=bias)
