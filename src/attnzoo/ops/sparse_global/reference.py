"""SparseGSA, the oracle: the official order of operations (``F.normalize`` of ``q`` and ``k`` over the pixels,
``(q̂ᵀ k̂) · τ``, the activation, ``attn @ v``), in ``(B, H, N, D)`` layout."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.sparse_global.functional import NORM_EPS
from attnzoo.ops.sparse_global.similarity import activate


def sparse_global_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, temperature: torch.Tensor,
                            *, top_k: int | None, activation: str) -> torch.Tensor:
    """``(B, H, N, D)`` q, k, v, ``(H,)`` temperature -> ``(B, H, N, D)``; O(N D²) time, O(N D) extra memory."""
    q = F.normalize(query, dim=2, eps=NORM_EPS)
    k = F.normalize(key, dim=2, eps=NORM_EPS)
    similarity = torch.matmul(q.transpose(-1, -2), k) * temperature[:, None, None]  # (B, H, D, D)
    return torch.matmul(value, activate(similarity, top_k, activation).transpose(-1, -2))
