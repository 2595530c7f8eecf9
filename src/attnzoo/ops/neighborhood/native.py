"""Neighborhood attention, the fused CPU kernel (:mod:`attnzoo.ops.native`): each query sees exactly its
``k_1 x ... x k_n`` neighbours (no tiles, no masked rectangles), in blocks of consecutive queries that share a
vector; forward and backward (input and bias gradients)."""

from __future__ import annotations

import torch

from attnzoo.masks import NeighborhoodPattern, neighborhood_window
from attnzoo.ops.dropin import DropIn
from attnzoo.ops.native import LocalPlan, local_plan, native_local_attention, register_plan
from attnzoo.ops.neighborhood.reference import rpb_radius


def neighborhood_native_plan(pattern: NeighborhoodPattern) -> LocalPlan:
    """Per axis, the run of in-group keys of every query (NATTEN's window, clipped at 0 on causal axes)."""
    starts, counts = [], []
    for length, k, d, causal in zip(pattern.shape, pattern.kernel_size, pattern.dilation, pattern.is_causal):
        i = torch.arange(length)
        low, high = neighborhood_window(i, length, k, d, causal)
        low = torch.clamp(low, min=0)
        starts.append(i % d + d * low)
        counts.append(high - low + 1)
    return local_plan(pattern.shape, starts, counts, pattern.dilation, pattern.kernel_size, rpb_radius(pattern))


def neighborhood_plan_arguments(pattern: NeighborhoodPattern) -> list[int]:
    """``pattern`` as the integers of the ``"neighborhood"`` plan: ndim, then shape, kernel, dilation, causal."""
    return [len(pattern.shape), *pattern.shape, *pattern.kernel_size, *pattern.dilation, *map(int, pattern.is_causal)]


def _decode(*arguments: int) -> LocalPlan:
    n = arguments[0]
    shape, kernel, dilation, causal = (tuple(arguments[1 + i * n:1 + (i + 1) * n]) for i in range(4))
    return neighborhood_native_plan(NeighborhoodPattern(shape, kernel, dilation, tuple(map(bool, causal))))


register_plan("neighborhood", _decode)


def neighborhood_native(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                        pattern: NeighborhoodPattern, rpb: torch.Tensor | None, scale: float,
                        dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, *grid, D)`` -> ``(B, H, *grid, Dv)``; time O(N · prod(k) · D), memory O(N · prod(k)) in the
    backward. Grouped KV heads (``dropin.gqa``) are read in place."""
    return native_local_attention(query, key, value, "neighborhood", neighborhood_plan_arguments(pattern),
                                  scale=scale, rpb=rpb)
