"""Hybrid-scale attention of one scale group, the oracle: dense scores over every (pixel, key cell) pair, the
explicit window mask of the shared mask function, explicit probabilities, and the significance read off them."""

from __future__ import annotations

import torch

from attnzoo.masks import dense_mask
from attnzoo.ops.dense import attend_values, check_dense_size
from attnzoo.ops.hybrid_scale.pattern import HybridScalePattern


def hybrid_scale_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                           pattern: HybridScalePattern, scale: float,
                           return_significance: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, X, Y, D)`` queries, ``(B, H, X/s, Y/s, D)`` keys -> ``(B, H, X, Y, Dv)`` (and the significance
    ``(B, X, Y)``). O(N · N/s² · D) time, O(N · N/s²) memory."""
    batch, heads, n, m = query.shape[0], query.shape[1], pattern.num_tokens, pattern.num_keys
    check_dense_size("the dense score matrix", (batch, heads, n, m), query.dtype, "impl='windowed'")
    mask = dense_mask(pattern.mask_mod(), n, m, device=query.device)
    q, k, v = (t.reshape(batch, heads, -1, t.shape[-1]) for t in (query, key, value))
    scores = torch.matmul(q, k.transpose(-1, -2)).mul(scale).masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = attend_values(probs, v, mask).reshape(*query.shape[:-1], value.shape[-1])
    if not return_significance:
        return out
    # each key cell's probability mass, averaged over the heads and over the queries that can see it
    cell = probs.sum((1, 2)) / (heads * mask.sum(0))  # (B, N/s²)
    rows, cols = torch.meshgrid(*(torch.arange(length, device=query.device) for length in pattern.shape),
                                indexing="ij")
    owner = (rows // pattern.reduction[0]) * pattern.key_shape[1] + cols // pattern.reduction[1]  # nearest cell
    return out, cell[:, owner]
