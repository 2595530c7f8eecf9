"""Sparsifiner's predicted connectivity (Wei et al., CVPR 2023, arXiv 2303.13755; official
``lim142857/Sparsifiner`` ``src/models/sparsifiner.py``, ``MaskPredictor``): the low-rank approximation of the
attention matrix and the top-k connectivity mask read from it, one query block at a time.

The predictor gives per head the basis coefficients ``C = softmax(q' k'ᵀ P_n · s)`` ``(B, H, N', K)`` and a basis
``P_b`` ``(K, N)`` shared by every head (the official ``proj_back_n.T``); the approximate attention is the
``N' x N`` product ``A_approx = C P_b`` (rank at most ``K``), and each query keeps the ``top_k`` keys of highest
approximate attention (the official ``torch.topk(attn_score, attn_budget)``; ties here go to the lower key index,
:mod:`attnzoo.ops.topk`, where ``torch.topk`` leaves them unspecified). The mask is not differentiated (the
official ``attn_mask.detach_()``).
"""

from __future__ import annotations

import torch

from attnzoo.ops.topk import top_k_indices

BLOCK_ELEMENTS = 2**22
"""Score entries (over all batch entries and heads) one query block may hold: 16 MiB of float32. The blocked
paths never hold more than a few blocks of this size, whatever the length."""


def block_rows(batch_heads: int, keys: int, total_rows: int) -> int:
    """Query rows per block so that a ``(batch_heads, rows, keys)`` block holds about :data:`BLOCK_ELEMENTS`
    entries (at least 1 row, at most ``total_rows``)."""
    return max(1, min(total_rows, BLOCK_ELEMENTS // max(1, batch_heads * keys)))


def low_rank_connectivity(coef: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``A_approx = C P_b``: ``(B, H, N', K)`` coefficients times the ``(K, N)`` basis -> ``(B, H, N', N)``
    (differentiable; what the distillation loss compares with the dense attention). O(N' · K · N)."""
    return torch.matmul(coef, basis)


@torch.no_grad()
def connectivity_indices(coef: torch.Tensor, basis: torch.Tensor, top_k: int) -> torch.Tensor:
    """``(B, H, N', top_k)`` int64, ascending: the keys each query keeps, the ``top_k`` highest entries of its row
    of :func:`low_rank_connectivity` (ties to the lower key index, NaN lowest). The rows are formed one block of
    :func:`block_rows` queries at a time, so the ``N' x N`` matrix never exists: O(N' · K · N) time,
    O(N' · top_k) memory for the result plus one block."""
    b, h, rows, _ = coef.shape
    n = basis.shape[-1]
    if top_k == n:  # every key: an expanded view, no (N', N) index tensor
        return torch.arange(n, device=coef.device).expand(b, h, rows, n)
    step = block_rows(b * h, n, rows)
    blocks = [top_k_indices(torch.matmul(coef[:, :, i:i + step], basis), top_k) for i in range(0, rows, step)]
    if len(blocks) == 1:
        return blocks[0]
    return torch.cat(blocks, dim=2) if blocks else coef.new_zeros((b, h, 0, top_k), dtype=torch.int64)
