"""What both SparseGSA implementations do to the ``(B, H, D, D)`` channel similarities: keep each query channel's
``top_k`` (deterministic ties) and apply the activation."""

from __future__ import annotations

import torch

from attnzoo.ops.topk import top_k_mask


def activate(similarity: torch.Tensor, top_k: int | None, activation: str) -> torch.Tensor:
    """``ReLU`` or ``softmax`` (over the key channels) of ``similarity`` ``(..., D, D)``, with only the ``top_k``
    largest entries of each row taking part (the others give weight 0)."""
    if top_k is not None and top_k < similarity.shape[-1]:
        kept = top_k_mask(similarity, top_k)
        if activation == "softmax":
            return torch.softmax(similarity.masked_fill(~kept, float("-inf")), dim=-1)
        return torch.relu(similarity) * kept
    return torch.softmax(similarity, dim=-1) if activation == "softmax" else torch.relu(similarity)
