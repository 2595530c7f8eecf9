"""Multi-query self-attention through ``scaled_dot_product_attention``: one causal SDPA call per query kind
(two: the short query and the window-mean long query), through :func:`attnzoo.ops.softmax.softmax_attention`
(``impl="sdpa"``), which keeps SDPA's flash kernels when there is no padding and gives a query that sees no key
zeros. First-order backward only (SDPA's CPU kernels have no double backward)."""

from __future__ import annotations

import torch

from attnzoo.ops.mqsa.window import causal_window_mean
from attnzoo.ops.softmax.functional import softmax_attention


def mqsa_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, window: int, alpha: float,
              scale: float, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """``(B, H, N, D)`` queries, keys and values -> ``(B, H, N, Dv)``; a branch whose weight is 0 is not run."""
    def attend(q: torch.Tensor) -> torch.Tensor:
        return softmax_attention(q, key, value, True, scale, "sdpa", key_padding_mask=key_padding_mask)

    out = alpha * attend(query) if alpha > 0 else None
    if alpha < 1:
        long = (1 - alpha) * attend(causal_window_mean(query, window, key_padding_mask))
        out = long if out is None else out + long
    return out if key_padding_mask is None else out * (~key_padding_mask)[:, None, :, None]
