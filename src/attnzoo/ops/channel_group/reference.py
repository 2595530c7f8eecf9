"""Channel group attention, the oracle: the ``C_g x C_g`` scores of every group in full, an explicit softmax."""

from __future__ import annotations

import torch


def channel_group_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                            scale: float) -> torch.Tensor:
    """``(B, G, N, C_g)`` -> ``(B, G, N, C_g)``: ``A[i, j] = softmax_j(Σ_n Q[n, i] K[n, j] · scale)``,
    ``O[n, i] = Σ_j A[i, j] V[n, j]``. O(N · C_g²) time, O(C_g²) scores per group."""
    scores = torch.einsum("bgni,bgnj->bgij", query, key) * scale
    return torch.einsum("bgij,bgnj->bgni", torch.softmax(scores, dim=-1), value)
