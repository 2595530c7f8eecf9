"""The oracle of pointer attention (arXiv 1506.03134, Sec. 2.3): the equation written out, with the whole
``(B, Nq, Nk, A)`` tanh tensor explicit."""

from __future__ import annotations

import torch


def pointer_reference(decoder: torch.Tensor, encoder: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
                      v: torch.Tensor, *, mask: torch.Tensor | None, return_logits: bool) -> torch.Tensor:
    """``u[b, i, j] = Σ_a v[a] · tanh((e_j W1)[a] + (d_i W2)[a])`` by broadcasting ``(B, 1, Nk, A) + (B, Nq, 1, A)``;
    disallowed positions set to ``-inf``; softmax over ``j`` unless ``return_logits``. O(B · Nq · Nk · A) time and
    memory."""
    keys = torch.einsum("bkd,da->bka", encoder, w1)      # W1 e_j
    queries = torch.einsum("bqd,da->bqa", decoder, w2)   # W2 d_i
    hidden = torch.tanh(keys[:, None, :, :] + queries[:, :, None, :])  # (B, Nq, Nk, A)
    scores = torch.einsum("bqka,a->bqk", hidden, v)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores if return_logits else torch.softmax(scores, dim=-1)
