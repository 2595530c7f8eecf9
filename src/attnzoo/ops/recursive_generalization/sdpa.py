"""RG-SA's attention step through ``scaled_dot_product_attention``: ``N`` queries over ``M`` representative
keys in one fused call, forward and backward by torch's kernels. Time O(N · M · (D + Dv))."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def recursive_generalization_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                                  scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` queries, ``(B, H, M, D)`` keys, ``(B, H, M, Dv)`` values -> ``(B, H, N, Dv)``."""
    return F.scaled_dot_product_attention(query, key, value, scale=scale)
