"""SparseGSA from the Gram matrix ``Qᵀ K``: the fast path.

``<q_i / max(‖q_i‖, ε), k_j / max(‖k_j‖, ε)> = (Qᵀ K)_ij / (max(‖q_i‖, ε) · max(‖k_j‖, ε))``: one ``(D x N) @ (N x D)``
GEMM per head on the raw inputs, the column norms on the side, the division on the small ``D x D`` matrix. The
reference's normalised copies of ``Q`` and ``K`` (``2 N D`` per head, kept for its backward) never exist; autograd
saves the inputs themselves and ``D``-sized norms. Same result up to round-off (the division moves after the
sum). Time O(N D²), extra memory O(D²) per head.
"""

from __future__ import annotations

import torch

from attnzoo.ops.sparse_global.functional import NORM_EPS
from attnzoo.ops.sparse_global.similarity import activate


def sparse_global_gram(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, temperature: torch.Tensor, *,
                       top_k: int | None, activation: str) -> torch.Tensor:
    """``(B, H, N, D)`` q, k, v, ``(H,)`` temperature -> ``(B, H, N, D)``."""
    q_norm = torch.linalg.vector_norm(query, dim=2).clamp_min(NORM_EPS)  # (B, H, D)
    k_norm = torch.linalg.vector_norm(key, dim=2).clamp_min(NORM_EPS)
    scale = temperature[:, None, None] / (q_norm[..., :, None] * k_norm[..., None, :])
    similarity = torch.matmul(query.transpose(-1, -2), key) * scale
    return torch.matmul(value, activate(similarity, top_k, activation).transpose(-1, -2))
