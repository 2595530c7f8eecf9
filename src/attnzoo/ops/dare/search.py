"""TWIN-style search of DARE (arXiv 2410.02604; official ``thuml/DARE`` ``model/din_pytorch.py``, soft search):
keep, per target, the ``top_k`` history items with the highest attention scores."""

from __future__ import annotations

import torch


def top_k_visible(scores: torch.Tensor, visible: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """``visible`` ``(B, M, N)`` restricted to the ``top_k`` highest ``scores`` among the visible keys of each
    target (all visible keys when ``top_k`` is ``None`` or at least their number). Ties go to the earlier
    position (a stable descending sort); the selection is not differentiated (as ``torch.topk`` indices)."""
    if top_k is None or top_k >= scores.shape[-1]:
        return visible
    ranked = scores.detach().masked_fill(~visible, float("-inf"))
    order = torch.sort(ranked, dim=-1, descending=True, stable=True).indices[..., :top_k]
    chosen = torch.zeros_like(visible).scatter(-1, order, True)
    return chosen & visible
