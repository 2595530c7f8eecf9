"""Head-token attention through SDPA: tokens and head tokens concatenated into one ``N + M`` sequence, one call of
:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa` (flash kernel, no ``(N + M)²`` scores; first-order backward)."""

from __future__ import annotations

import torch

from attnzoo.ops.softmax.sdpa import softmax_sdpa


def head_token_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, head_query: torch.Tensor,
                    head_key: torch.Tensor, head_value: torch.Tensor, *,
                    scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, N, ·)`` tokens and ``(B, H, M, ·)`` head tokens -> ``(out (B, H, N, Dv), head_out (B, H, M, Dv))``."""
    n = query.shape[2]
    out = softmax_sdpa(torch.cat([query, head_query], 2), torch.cat([key, head_key], 2),
                       torch.cat([value, head_value], 2), is_causal=False, scale=scale)
    return out[:, :, :n], out[:, :, n:]
