"""Sparsifiner's attention distillation loss (arXiv 2303.13755; official ``src/losses.py``, ``NewLoss``, items 4
"attention reconstruction" and 5 "attention self distillation"): the predictor's low-rank approximation
``C P_b`` is fitted to a dense attention matrix by a summed squared error,

    L = Σ_{b, h, i >= g, j} ( (C P_b)_{ij} - A_{ij} )²        (F.mse_loss(approx_attn, attn_t[..., 1:, :], 'sum'))

where ``A`` is a dense softmax attention ``(B, H, N, N)``: a frozen dense teacher's (reconstruction, the paper's
first training phase) or the layer's own (self distillation); its first ``g = global_queries`` rows (the class
token, which keeps every key) are left out. The official code averages this over layers and weights it (0.01
for reconstruction, 0.002 to 0.05 for self distillation); the weighting is the caller's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.sparsifiner.connectivity import low_rank_connectivity
from attnzoo.validation import check_int

REDUCTIONS = ("sum", "mean")


def sparsifiner_distillation_loss(coef: torch.Tensor, basis: torch.Tensor, attention: torch.Tensor, *,
                                  global_queries: int = 0, reduction: str = "sum") -> torch.Tensor:
    """The squared error between ``coef @ basis`` ``(B, H, N - g, N)`` and rows ``g:`` of the dense
    ``attention`` ``(B, H, N, N)``, summed (the official ``reduction='sum'``) or averaged (``"mean"``);
    differentiable in ``coef`` and ``basis`` (and ``attention``, unless the caller detaches it). O(N² K)
    time, O(N²) memory: it reads a dense attention matrix.

    >>> import torch
    >>> coef, basis = torch.rand(1, 2, 9, 3).softmax(-1), torch.rand(3, 10)
    >>> attention = torch.randn(1, 2, 10, 10).softmax(-1)
    >>> sparsifiner_distillation_loss(coef, basis, attention, global_queries=1).shape
    torch.Size([])
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}: expected one of {REDUCTIONS}")
    if not isinstance(attention, torch.Tensor) or attention.dim() != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention has shape {tuple(getattr(attention, 'shape', ()))}; expected a dense "
                         "(B, H, N, N) attention matrix")
    b, h, n, _ = attention.shape
    check_int("global_queries", global_queries, minimum=0)
    if not isinstance(coef, torch.Tensor) or not isinstance(basis, torch.Tensor):
        raise TypeError("coef and basis must be torch.Tensor")
    if basis.dim() != 2 or basis.shape[1] != n:
        raise ValueError(f"basis has shape {tuple(basis.shape)}; expected (K, N) with N={n}, the attention's keys")
    rows = n - global_queries
    if coef.shape != (b, h, rows, basis.shape[0]):
        raise ValueError(f"coef has shape {tuple(coef.shape)}; expected (B, H, N - global_queries, K) = "
                         f"({b}, {h}, {rows}, {basis.shape[0]})")
    return F.mse_loss(low_rank_connectivity(coef, basis), attention[:, :, global_queries:], reduction=reduction)
