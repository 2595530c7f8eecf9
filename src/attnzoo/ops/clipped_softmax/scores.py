"""Masked attention scores of one block of queries, shared by the clipped-softmax reference (all queries at once)
and its chunked fast path (one chunk of queries at a time), with the drop-in conventions of
:mod:`attnzoo.ops.dropin`."""

from __future__ import annotations

import torch


def masked_scores(query: torch.Tensor, key: torch.Tensor, scale: float, additive: torch.Tensor | None,
                  visible: torch.Tensor, dtype: torch.dtype | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scores, visible, any_visible)`` for ``(B, H, M, D)`` queries against ``(B, H, Nk, D)`` keys.

    ``scores = q kᵀ · scale + additive`` with the pairs outside ``visible`` (boolean, broadcast to
    ``(B, H, M, Nk)``) and those an additive ``-inf`` hides set to ``-inf``; a query that sees no key gets a row
    of zeros instead (so the softmax has no NaN) and ``any_visible`` ``(B, H, M, 1)`` False, by which its
    probabilities are multiplied. ``dtype``: the scores' dtype (``None``: the query's). O(M · Nk · D) time,
    O(M · Nk) memory.
    """
    scores = torch.matmul(query, key.transpose(-1, -2)).to(dtype) * scale
    if additive is not None:
        scores = scores + additive
    visible = visible & (scores != float("-inf"))
    any_visible = visible.any(-1, keepdim=True)
    return scores.masked_fill(~visible, float("-inf")).masked_fill(~any_visible, 0), visible, any_visible


def additive_mask(attn_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The additive (floating) ``attn_mask`` of a call, or ``None`` (no mask, or a boolean one)."""
    return attn_mask if attn_mask is not None and attn_mask.dtype != torch.bool else None
