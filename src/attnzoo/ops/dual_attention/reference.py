"""The oracles of the position and channel attention modules (DANet's PAM / CAM, as paper 23 uses them): the
explicit ``(N, N)`` and ``(C, C)`` attention matrices, written as the official ``attention.py`` computes them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def position_reference(x: torch.Tensor, query_weight: torch.Tensor, query_bias: torch.Tensor | None,
                       key_weight: torch.Tensor, key_bias: torch.Tensor | None, value_weight: torch.Tensor,
                       value_bias: torch.Tensor | None, gamma: torch.Tensor) -> torch.Tensor:
    """``γ · V softmax_row(Qᵀ K)ᵀ + x`` for ``x`` ``(B, C, H, W)`` with the 1x1 projections ``Q = Wq x + bq``,
    ``K = Wk x + bk`` ``(C', N)`` and ``V = Wv x + bv`` ``(C, N)``, ``N = H·W``: the ``(B, N, N)`` energy
    ``E[i, j] = q_i · k_j`` (no scaling), its row softmax ``S`` and ``out[:, i] = Σ_j S[i, j] v_j``.
    O(N² · C) time, O(N²) memory."""
    b, c, h, w = x.shape
    tokens = x.reshape(b, c, h * w).transpose(1, 2)  # (B, N, C)
    query = F.linear(tokens, query_weight, query_bias)  # (B, N, C')
    key = F.linear(tokens, key_weight, key_bias)
    value = F.linear(tokens, value_weight, value_bias)  # (B, N, C)
    energy = query @ key.transpose(1, 2)  # (B, N, N)
    attention = torch.softmax(energy, dim=-1)
    out = attention @ value  # (B, N, C)
    return gamma * out.transpose(1, 2).reshape(b, c, h, w) + x


def channel_reference(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``γ · A X + x`` for ``X = x`` as ``(C, N)``: the ``(B, C, C)`` energy ``E = X Xᵀ``, ``A =
    softmax_row(max_row(E) − E)`` exactly as the official ``CAM_Module`` (the row maximum is a shift, so ``A =
    softmax_row(−E)``); O(C² · N) time, O(C²) memory."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    energy = flat @ flat.transpose(1, 2)
    attention = torch.softmax(energy.amax(dim=-1, keepdim=True) - energy, dim=-1)
    return gamma * (attention @ flat).reshape(b, c, h, w) + x
