"""Hybrid-scale attention of one scale group, the fast path: partition the queries into ``M·s`` windows and the
reduced keys into ``M`` windows, one batched SDPA over all windows (SDPA's flash kernel through
:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa`: first-order backward), or, when the significance is asked for,
batched GEMMs with the softmax in between (SDPA does not return its probabilities; any-order autograd).

Time O(N · M² · D), memory O(N · M²) (the probabilities only when the significance is returned); nothing
``N x N/s²`` is formed unless there is one window (the global branch, whose every pair is visible).
"""

from __future__ import annotations

import torch

from attnzoo.ops.hybrid_scale.pattern import HybridScalePattern
from attnzoo.ops.softmax.sdpa import softmax_sdpa
from attnzoo.ops.window.partition import window_merge, window_partition


def hybrid_scale_windowed(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                          pattern: HybridScalePattern, scale: float,
                          return_significance: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, X, Y, D)`` queries, ``(B, H, X/s, Y/s, D)`` keys -> ``(B, H, X, Y, Dv)`` (and the significance
    ``(B, X, Y)``)."""
    batch, heads = query.shape[:2]
    q = window_partition(query, pattern.query_window)  # (B, H, nW, (M s)², D)
    k, v = window_partition(key, pattern.window), window_partition(value, pattern.window)  # (B, H, nW, M², D)
    if not return_significance:
        out = softmax_sdpa(q.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2), is_causal=False, scale=scale)
        return window_merge(out.unflatten(1, (heads, -1)), pattern.shape, pattern.query_window)
    probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1)  # (B, H, nW, (M s)², M²)
    out = window_merge(torch.matmul(probs, v), pattern.shape, pattern.query_window)
    cell = probs.sum((1, 3)) / (heads * q.shape[-2])  # (B, nW, M²): mean over heads and the window's queries
    cell = window_merge(cell[:, None, :, :, None], pattern.key_shape, pattern.window)[:, 0, :, :, 0]
    significance = cell.repeat_interleave(pattern.reduction[0], 1).repeat_interleave(pattern.reduction[1], 2)
    return out, significance
