"""Global query attention, the oracle: the global queries tiled over the grid (slot ``i`` of every window reads
global query ``i``), then dense window attention through the N x N mask of :mod:`attnzoo.ops.window`."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import pattern_attention
from attnzoo.ops.window.pattern import WindowPattern


def tiled_queries(query: torch.Tensor, pattern: WindowPattern) -> torch.Tensor:
    """One query per token ``(B, H, X, Y, D)``: the global queries ``(B, H, wx, wy, D)`` repeated over the
    windows (token ``(x, y)`` gets global query ``(x mod wx, y mod wy)``); per-token queries unchanged."""
    if tuple(query.shape[2:4]) == pattern.shape:
        return query
    return query.repeat(1, 1, pattern.shape[0] // pattern.window[0], pattern.shape[1] // pattern.window[1], 1)


def global_query_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: WindowPattern,
                           rpb: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``(B, H, wx, wy, D)`` or ``(B, H, X, Y, D)`` queries, ``(B, H, X, Y, D)`` keys -> ``(B, H, X, Y, Dv)``;
    O(N^2) time and memory."""
    return pattern_attention(tiled_queries(query, pattern), key, value, pattern=pattern, scale=scale, table=rpb,
                             radius=pattern.radius)
