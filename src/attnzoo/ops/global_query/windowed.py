"""Global query attention, the fast path: keys and values cut into windows, the global queries repeated per
window, one batched SDPA with the relative position bias (GC ViT's ``WindowAttentionGlobal`` computation).

The window partition (one gather) and the in-window table index are those of the unshifted window attention
(:func:`attnzoo.ops.window.windowed.window_layout`); the global queries, flattened row-major as the window's
tokens are, are expanded over the windows (or, for per-token queries, partitioned like the keys). Time
O(N · w² · D), memory O(N · w²); nothing N x N is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.window.pattern import WindowPattern
from attnzoo.ops.window.windowed import window_layout


def global_query_windowed(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: WindowPattern,
                          rpb: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``(B, H, wx, wy, D)`` or ``(B, H, X, Y, D)`` queries, ``(B, H, X, Y, D)`` keys -> ``(B, H, X, Y, Dv)``."""
    order, inverse, index, _ = window_layout(pattern, str(key.device))
    batch, heads = key.shape[:2]
    size = index.shape[0]  # w² tokens per window
    windows = pattern.num_tokens // size

    def partition(t: torch.Tensor) -> torch.Tensor:  # (B, H, X, Y, d) -> (B, H·nW, w², d)
        return t.flatten(2, 3).index_select(2, order).reshape(batch, heads * windows, size, t.shape[-1])

    if tuple(query.shape[2:4]) == pattern.shape:
        queries = partition(query)
    else:
        queries = query.flatten(2, 3)[:, :, None].expand(batch, heads, windows, size, query.shape[-1])
        queries = queries.reshape(batch, heads * windows, size, query.shape[-1])
    bias = None
    if rpb is not None:
        bias = rpb.flatten(1)[:, index][:, None].expand(heads, windows, size, size).reshape(heads * windows, size,
                                                                                            size)
    out = F.scaled_dot_product_attention(queries, partition(key), partition(value), attn_mask=bias, scale=scale)
    return out.reshape(batch, heads, -1, out.shape[-1]).index_select(2, inverse).reshape(*key.shape[:-1], -1)
