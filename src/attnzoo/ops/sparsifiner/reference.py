"""Sparsifiner attention, the oracle: the explicit ``N x N`` connectivity mask and dense masked softmax (the
official ``attn.masked_fill_(~attn_mask, -inf).softmax(-1)``)."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size, dense_attention


def connectivity_mask(indices: torch.Tensor, tokens: int, global_queries: int) -> torch.Tensor:
    """Boolean ``(B, H, N, N)``: row ``i < global_queries`` all ``True`` (the official class-token row), row
    ``i >= global_queries`` ``True`` at its selected keys ``indices[..., i - global_queries, :]``."""
    b, h = indices.shape[:2]
    mask = torch.ones(b, h, tokens, tokens, dtype=torch.bool, device=indices.device)
    mask[:, :, global_queries:] = torch.zeros_like(mask[:, :, global_queries:]).scatter(-1, indices, True)
    return mask


def sparsifiner_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor, *,
                          global_queries: int, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` q/k, ``(B, H, N, Dv)`` v, ``(B, H, N - g, top_k)`` selected keys -> ``(B, H, N, Dv)``;
    O(N²) time and memory."""
    n = query.shape[2]
    check_dense_size("the N x N connectivity mask of sparsifiner_attention's reference", (*query.shape[:2], n, n),
                     query.dtype, "impl='blocked'")
    return dense_attention(query, key, value, mask=connectivity_mask(indices, n, global_queries), scale=scale)
