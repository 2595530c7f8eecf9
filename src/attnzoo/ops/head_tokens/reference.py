"""Head-token attention, the oracle: tokens and head tokens concatenated, dense scores over all ``N + M`` keys
(:func:`attnzoo.ops.dense_attention`); O((N + M)²) time and memory."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import dense_attention


def head_token_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, head_query: torch.Tensor,
                         head_key: torch.Tensor, head_value: torch.Tensor, *,
                         scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, N, ·)`` tokens and ``(B, H, M, ·)`` head tokens -> ``(out (B, H, N, Dv), head_out (B, H, M, Dv))``."""
    n = query.shape[2]
    out = dense_attention(torch.cat([query, head_query], 2), torch.cat([key, head_key], 2),
                          torch.cat([value, head_value], 2), scale=scale)
    return out[:, :, :n], out[:, :, n:]
