"""(Shifted) window attention, the fast path: roll, partition into windows, one batched SDPA over all windows.

Swin's own computation: ``torch.roll`` by ``-shift``, ``window_partition``, attention inside each ``w x w``
window with the relative position bias and, when shifted, the region mask, then ``window_reverse`` and roll
back; here roll + partition (and their inverse) are one precomputed gather each way. The region mask is the
shared mask function evaluated on the original indices of each window's tokens, so it cannot disagree with
the reference. Time O(N · w² · D), memory O(N · w²); nothing N x N is built.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from attnzoo.ops.window.partition import window_partition
from attnzoo.ops.window.pattern import WindowPattern
from attnzoo.positional import relative_position_index


@functools.lru_cache(maxsize=32)
def window_layout(pattern: WindowPattern, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                               torch.Tensor | None]:
    """Where each window slot's token lives, the way back, the table index and the visibility.

    ``order (N,)``: original flat index of each slot of the rolled and partitioned grid (windows row-major);
    ``inverse (N,)``: its inverse permutation; ``index (w², w²)``: table entry of every in-window pair (in-window
    offsets equal original offsets for every visible pair: a region never wraps); ``visible (nW, w², w²)``:
    the shared mask function on the original indices (``None`` unshifted, where it is all true).
    """
    grid = torch.arange(pattern.num_tokens, device=device).reshape(1, 1, *pattern.shape, 1)
    if any(pattern.shift):
        grid = torch.roll(grid, shifts=tuple(-s for s in pattern.shift), dims=(2, 3))
    windows = window_partition(grid, pattern.window)[0, 0, :, :, 0]  # (nW, w²)
    local = torch.arange(windows.shape[1], device=device)
    index = relative_position_index(local[:, None], local[None, :], pattern.window, pattern.radius)
    visible = None
    if any(pattern.shift):
        zero = torch.zeros((), dtype=torch.long, device=device)
        visible = pattern.mask_mod()(zero, zero, windows[:, :, None], windows[:, None, :])
    order = windows.flatten()
    return order, torch.argsort(order), index, visible


def window_windowed(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: WindowPattern,
                    rpb: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``(B, H, X, Y, D)`` -> ``(B, H, X, Y, Dv)``; time O(N · w² · D), memory O(N · w²)."""
    order, inverse, index, visible = window_layout(pattern, str(query.device))
    batch, heads = query.shape[:2]
    size = index.shape[0]  # w² tokens per window
    windows = pattern.num_tokens // size

    def partition(t: torch.Tensor) -> torch.Tensor:  # one gather: roll and partition at once
        return t.flatten(2, 3).index_select(2, order).reshape(batch, heads * windows, size, t.shape[-1])

    bias = None
    if rpb is not None:
        bias = rpb.flatten(1)[:, index][:, None]  # (H, 1, w², w²)
    if visible is not None:
        blocked = torch.zeros(visible.shape, dtype=query.dtype, device=query.device).masked_fill(~visible,
                                                                                                float("-inf"))
        bias = blocked if bias is None else bias + blocked
    if bias is not None:
        bias = bias.expand(heads, windows, size, size).reshape(heads * windows, size, size)
    out = F.scaled_dot_product_attention(partition(query), partition(key), partition(value), attn_mask=bias,
                                         scale=scale)
    return out.reshape(batch, heads, -1, out.shape[-1]).index_select(2, inverse).reshape(*query.shape[:-1], -1)
