"""Global query attention on the fused CPU kernel (:mod:`attnzoo.ops.native`): the global queries of one window
tiled over the grid (token ``(x, y)`` takes query ``(x mod wx, y mod wy)``, what the windowed path's expansion
over windows means), then unshifted window attention (:mod:`attnzoo.ops.window.native`): each query reads its
window's keys in place. The tiling's backward sums the windows' query gradients (autograd of ``repeat``)."""

from __future__ import annotations

import torch

from attnzoo.ops.window.native import window_native
from attnzoo.ops.window.pattern import WindowPattern


def global_query_native(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: WindowPattern,
                        rpb: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``(B, H, wx, wy, D)`` or ``(B, H, X, Y, D)`` queries, ``(B, H, X, Y, D)`` keys -> ``(B, H, X, Y, Dv)``;
    time O(N · wx · wy · D), memory O(N · D) for the tiled queries."""
    if tuple(query.shape[2:4]) != pattern.shape:
        tiles = [length // w for length, w in zip(pattern.shape, pattern.window)]
        query = query.repeat(1, 1, *tiles, 1)
    return window_native(query, key, value, pattern=pattern, rpb=rpb, scale=scale)
