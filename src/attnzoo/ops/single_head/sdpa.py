"""Single-head attention through :func:`attnzoo.ops.softmax_attention` with ``impl="sdpa"`` (SDPA's flash kernel:
no N x N scores; a first-order backward)."""

from __future__ import annotations

import torch

from attnzoo.ops.softmax import softmax_attention


def single_head_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, scale: float) -> torch.Tensor:
    """``(B, 1, N, d_qk)`` queries/keys, ``(B, 1, N, Dv)`` values -> ``(B, 1, N, Dv)``."""
    return softmax_attention(query, key, value, scale=scale, impl="sdpa")
