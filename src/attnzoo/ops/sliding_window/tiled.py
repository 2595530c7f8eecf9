"""Sliding-window attention, the CPU fast path: the tiled kernel of :mod:`attnzoo.ops.tiled` on 1-D windows.

Query tiles of ``tile`` consecutive positions each gather the ``tile + span - 1`` keys that cover their
windows; the tile masks come from the pattern's mask function (:func:`attnzoo.ops.tiled.tile_plan`). Sink
tokens are appended to every tile's keys, their columns masked by the same mask function and dropped where
the sink already lies inside the tile's region. Time O(N · (tile + span + s) · D), memory O(N · (span + s)):
no N x N matrix is built.
"""

from __future__ import annotations

import functools

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.neighborhood.tiled import default_tiles
from attnzoo.ops.sliding_window.patterns import SlidingWindowPattern
from attnzoo.ops.sliding_window.sinks import append_sinks, sink_visibility
from attnzoo.ops.tiled import (
    TilePlan,
    attend_tiles,
    axis_tiles,
    compute_dtype,
    gather_tiles,
    mask_logits,
    scatter_tiles,
    tile_plan,
)


@functools.lru_cache(maxsize=32)
def sliding_window_plan(pattern: SlidingWindowPattern, device: str) -> tuple[TilePlan, torch.Tensor]:
    """The tile plan of ``pattern`` (tiles of at least half a window, as for 1-D neighborhood attention) and
    the visibility ``(tiles, tile, s)`` of the sink columns."""
    (tile,) = default_tiles((pattern.span,))
    axes = axis_tiles(pattern.length, 1, tile, pattern.span, pattern.window_low, device)
    plan = tile_plan(pattern.shape, [axes], pattern.mask_mod())
    sinks = sink_visibility(pattern.mask_mod(), plan.query_flat, plan.key_flat, pattern.num_sink_tokens)
    return plan, sinks


@functools.lru_cache(maxsize=64)
def sliding_window_logits(pattern: SlidingWindowPattern, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The cached additive mask logits ``(tiles, tile, region + s)``: region columns, then sink columns."""
    plan, sinks = sliding_window_plan(pattern, device)
    return mask_logits(torch.cat([plan.visible, sinks], dim=-1), dtype)


def sliding_window_tiled(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                         pattern: SlidingWindowPattern, scale: float, dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N, Dv)``; time O(N · region · D), memory O(N · region). Grouped KV heads
    (``dropin.gqa``) are repeated to the query's heads (autograd sums their gradients back)."""
    if dropin.gqa:
        key, value = (t.repeat_interleave(query.shape[1] // key.shape[1], dim=1) for t in (key, value))
    device = str(query.device)
    plan, _ = sliding_window_plan(pattern, device)
    keys, values = gather_tiles(key, plan.key_flat), gather_tiles(value, plan.key_flat)
    if pattern.num_sink_tokens:
        keys = append_sinks(keys, key, pattern.num_sink_tokens)
        values = append_sinks(values, value, pattern.num_sink_tokens)
    out = attend_tiles(gather_tiles(query, plan.query_flat), keys, values,
                       sliding_window_logits(pattern, device, compute_dtype(query.dtype)), scale=scale)
    return scatter_tiles(out, plan, pattern.shape)
