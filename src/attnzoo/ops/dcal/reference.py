"""The oracles of DCAL's two cross-attentions (arXiv 2205.02151): dense scores, written as the paper states them."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size, dense_attention


def pwca_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key2: torch.Tensor,
                   value2: torch.Tensor, *, scale: float) -> torch.Tensor:
    """Eq. 4 as two score blocks normalised together: ``S_1 = Q_1 K_1ᵀ · scale`` (the ``N1`` self-attention
    scores) and ``S_2 = Q_1 K_2ᵀ · scale`` (the ``N2`` cross scores), ``m`` the row maximum over both,
    ``out = (e^{S_1 - m} V_1 + e^{S_2 - m} V_2) / (Σ e^{S_1 - m} + Σ e^{S_2 - m})``. O(Nq · (N1 + N2)) time and
    memory."""
    b, h, nq, _ = query.shape
    check_dense_size("the dense score matrix", (b, h, nq, key.shape[2] + key2.shape[2]), query.dtype,
                     "impl='auto' or 'sdpa'")
    s1 = torch.matmul(query, key.transpose(-1, -2)) * scale
    s2 = torch.matmul(query, key2.transpose(-1, -2)) * scale
    m = torch.maximum(s1.amax(-1, keepdim=True), s2.amax(-1, keepdim=True)).detach()
    e1, e2 = torch.exp(s1 - m), torch.exp(s2 - m)
    return (torch.matmul(e1, value) + torch.matmul(e2, value2)) / (e1.sum(-1, keepdim=True) + e2.sum(-1, keepdim=True))


def glca_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor, *,
                   scale: float) -> torch.Tensor:
    """Eq. 3, ``softmax(Q^l K^gᵀ · scale) V^g``, with ``Q^l`` the query rows ``indices`` ``(B, R)`` picked one
    batch entry at a time by plain indexing; O(R · N) time and memory."""
    local = torch.stack([query[i][:, indices[i]] for i in range(query.shape[0])]) if query.shape[0] else \
        query[:, :, :indices.shape[1]]
    return dense_attention(local, key, value, scale=scale)
