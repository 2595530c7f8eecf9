"""Deterministic top-k selection along the last dim, shared by the content-sparse mechanisms (Sparsifiner's
connectivity mask, SparseGSA's kept similarities), so that a reference and a fast path that select through it
keep exactly the same keys.

:func:`torch.topk` leaves the choice among equal values unspecified. Here ties are broken by the index: among
equal scores the lower index is kept, exactly what ``torch.sort(scores, descending=True, stable=True)`` followed by
taking the first ``k`` keeps, but in O(N) per row (two ``topk`` passes) rather than a full O(N log N) sort. NaN
scores rank below every number (including ``-inf``), so a NaN is kept only when a row has fewer than ``k`` other
scores. The selection is not differentiable (indices); scores are read detached.
"""

from __future__ import annotations

import torch


def _rank_keys(scores: torch.Tensor, k: int) -> torch.Tensor:
    """int64 keys with the order of the wanted selection and no ties: ``2N`` above the ``k``-th largest score,
    ``N`` equal to it, ``0`` below (NaN included), plus ``N - 1 - index`` so that the lower index wins a tie."""
    n = scores.shape[-1]
    finite = scores.masked_fill(scores.isnan(), float("-inf"))
    threshold = finite.topk(k, dim=-1, sorted=False).values.amin(-1, keepdim=True)
    level = (finite > threshold).long() + (finite >= threshold).long()  # NaN compares False: level 0
    level = level.masked_fill(scores.isnan(), 0)  # a NaN never ties with a -inf threshold
    return level * n + torch.arange(n - 1, -1, -1, device=scores.device)


def top_k_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``(..., k)`` int64 indices of the ``k`` highest ``scores`` ``(..., N)`` in each row, ascending; ties go
    to the lower index, NaN ranks lowest (see the module). ``1 <= k <= N`` (the callers check it).

    Eager calls take the fast route: one ``topk`` and, only for the rows whose ``k``-th score is tied with an
    unselected one, the exact ranking of :func:`_rank_keys`. While ``torch.compile`` traces (no data-dependent
    branch) every row is ranked exactly: the same result. Time O(N) per row, memory O(N) per row.

    >>> import torch
    >>> top_k_indices(torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]]), 2)
    tensor([[1, 2]])
    """
    scores = scores.detach()
    n = scores.shape[-1]
    if k == n:
        return torch.arange(n, device=scores.device).expand(*scores.shape[:-1], n)
    if torch.compiler.is_compiling() or scores.isnan().any():
        return _rank_keys(scores, k).topk(k, dim=-1, sorted=False).indices.sort(dim=-1).values
    values, indices = scores.topk(k, dim=-1, sorted=False)
    threshold = values.amin(-1, keepdim=True)
    tied = (scores >= threshold).sum(-1) > k  # rows where the k-th score also belongs to an unselected key
    if bool(tied.any()):
        rows = tied.nonzero(as_tuple=True)
        indices = indices.index_put(rows, _rank_keys(scores[rows], k).topk(k, dim=-1, sorted=False).indices)
    return indices.sort(dim=-1).values


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``(..., N)``: ``True`` at the :func:`top_k_indices` of each row."""
    return torch.zeros(scores.shape, dtype=torch.bool, device=scores.device).scatter(
        -1, top_k_indices(scores, k), True)
