"""Single-head attention, the oracle: dense scores ``softmax(Q Kᵀ · scale) V`` (:func:`attnzoo.ops.dense_attention`);
O(N²) time and memory."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import dense_attention


def single_head_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                          scale: float) -> torch.Tensor:
    """``(B, 1, N, d_qk)`` queries/keys, ``(B, 1, N, Dv)`` values -> ``(B, 1, N, Dv)``."""
    return dense_attention(query, key, value, scale=scale)
