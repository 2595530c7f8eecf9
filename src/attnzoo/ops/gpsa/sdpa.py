"""GPSA, the fast path: content attention through SDPA, the positional attention once for the whole batch.

Both terms of the mixture are row-stochastic, so the official row normalisation is the identity and the mixture
distributes over the value product: ``A v = (1 - σ) · softmax(q kᵀ · scale) v + σ · P v``. The content term
runs as :func:`attnzoo.ops.softmax_attention` with ``impl="sdpa"`` (its flash kernel never forms the
``(B, H, N, N)`` weights; first-order backward), the positional term as one ``(H, N, N) @ (B, H, N, Dv)``
batched GEMM with ``P = softmax(v_pos · r)`` built once, not per batch entry. Memory O(H · N² + B · H · N · D)."""

from __future__ import annotations

import torch

from attnzoo.ops.gpsa.positions import positional_logits
from attnzoo.ops.softmax import softmax_attention


def gpsa_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pos_weight: torch.Tensor,
              gate: torch.Tensor, scale: float, return_weights: bool = False) -> torch.Tensor:
    """``(B, H, X, Y, D)`` queries/keys, ``(B, H, X, Y, Dv)`` values -> ``(B, H, X, Y, Dv)``. ``return_weights``
    is always ``False`` here (this path declares no weights: dispatch sends such calls to the reference)."""
    grid = tuple(query.shape[2:4])
    v = value.flatten(2, 3)
    content = softmax_attention(query.flatten(2, 3), key.flatten(2, 3), v, scale=scale, impl="sdpa")
    positional = torch.matmul(positional_logits(pos_weight, grid).softmax(dim=-1), v)
    sigma = torch.sigmoid(gate).view(-1, 1, 1)
    return ((1.0 - sigma) * content + sigma * positional).unflatten(2, grid)
