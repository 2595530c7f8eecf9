"""Fourier-KArAt, the oracle: the explicit N x N learned attention matrix, then ``σ̂(A) V``."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import check_dense_size


def karat_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, cos_coef: torch.Tensor,
                    sin_coef: torch.Tensor, proj: torch.Tensor, scale: float) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N, Dv)``, written as the definition (each ``cos(m x)``, ``sin(m x)`` evaluated).

    O(N² · G · (r + 1) + N² · r + N² · Dv) time, O(N² · G) memory.
    """
    check_dense_size("the (N, N, harmonics) angles of fourier_karat's reference",
                     (*query.shape[:-1], key.shape[-2], cos_coef.shape[-1]), query.dtype, "impl='blocked'")
    scores = query @ key.transpose(-1, -2) * scale  # (B, H, N, N): 𝒜
    grid = torch.arange(1, cos_coef.shape[-1] + 1, dtype=scores.dtype, device=scores.device)
    angles = scores.unsqueeze(-1) * grid  # (B, H, N, N, G): m 𝒜_kq
    # h_kp = sum_q sum_m a_pqm cos(m 𝒜_kq) + b_pqm sin(m 𝒜_kq)
    hidden = (torch.einsum("bhkqm,hpqm->bhkp", torch.cos(angles), cos_coef)
              + torch.einsum("bhkqm,hpqm->bhkp", torch.sin(angles), sin_coef))
    attention = torch.einsum("bhkp,hqp->bhkq", hidden, proj)  # σ̂(𝒜)_kq = sum_p W_qp h_kp, (B, H, N, N)
    return attention @ value
