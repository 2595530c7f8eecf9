"""RG-SA's attention step, the oracle: dense ``N x M`` scores of the queries over the representatives."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import dense_attention


def recursive_generalization_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                                       scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` queries, ``(B, H, M, D)`` keys, ``(B, H, M, Dv)`` values -> ``(B, H, N, Dv)``;
    O(N · M) time and memory."""
    return dense_attention(query, key, value, scale=scale)
