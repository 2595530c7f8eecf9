"""Neighborhood attention, the CPU fast path: the tiled kernel of :mod:`attnzoo.ops.tiled` on NA windows."""

from __future__ import annotations

import functools
import math

import torch

from attnzoo.masks import NeighborhoodPattern, neighborhood_window
from attnzoo.ops.dropin import DropIn
from attnzoo.ops.neighborhood.reference import rpb_radius
from attnzoo.ops.tiled import TilePlan, axis_tiles, tile_plan, tiled_attention
from attnzoo.positional import relative_position_index


def default_tiles(kernel_size: tuple[int, ...]) -> tuple[int, ...]:
    """Queries per tile on each axis: at least half a window (so the key region, tile + k - 1, stays within
    about 1.5x of the window) and at least about 32 queries per tile in all (so each GEMM is big enough to run
    near peak). Measured on CPU, fp32: 2-D 7x7 on 64x64 -> (6, 6); 1-D k=127 -> 64; 3-D 3x3x3 -> (4, 4, 4)."""
    per_axis = math.ceil(32 ** (1 / len(kernel_size)) - 1e-9)
    return tuple(max(k // 2 + 1, per_axis) for k in kernel_size)


@functools.lru_cache(maxsize=32)
def neighborhood_plan(pattern: NeighborhoodPattern, device: str) -> tuple[TilePlan, torch.Tensor]:
    """The tile plan of ``pattern`` and the relative-position index of every (query, key) tile entry."""
    axes = []
    for length, k, d, causal, tile in zip(pattern.shape, pattern.kernel_size, pattern.dilation, pattern.is_causal,
                                          default_tiles(pattern.kernel_size)):
        def window_low(i: torch.Tensor, length=length, k=k, d=d, causal=causal) -> torch.Tensor:
            return neighborhood_window(i, length, k, d, causal)[0]

        axes.append(axis_tiles(length, d, tile, k, window_low, device))
    plan = tile_plan(pattern.shape, axes, pattern.mask_mod())
    rel = relative_position_index(plan.query_flat[:, :, None], plan.key_flat[:, None, :], pattern.shape,
                                  rpb_radius(pattern), pattern.dilation)
    return plan, rel


def neighborhood_tiled(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                       pattern: NeighborhoodPattern, rpb: torch.Tensor | None, scale: float,
                       dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, *grid, D)`` -> ``(B, H, *grid, Dv)``; time O(N · region · D), memory O(N · region). Grouped KV
    heads (``dropin.gqa``, the one drop-in feature it declares) are repeated to the query's heads (autograd sums
    their gradients back)."""
    if dropin.gqa:
        key, value = (t.repeat_interleave(query.shape[1] // key.shape[1], dim=1) for t in (key, value))
    plan, rel = neighborhood_plan(pattern, str(query.device))
    bias = None if rpb is None else (lambda q_flat, k_flat: rpb.flatten(1)[:, rel])
    return tiled_attention(query, key, value, plan, scale=scale, bias=bias)
