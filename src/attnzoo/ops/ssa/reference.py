"""The oracle of SSA: dense ``N x N`` scores with the subsample's explicit mask (and its ``log_weight`` bias)."""

from __future__ import annotations

import torch

from attnzoo.ops.dense import dense_attention


def subsample_mask(key_index: torch.Tensor, segment_size: int, length: int,
                   log_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(N, N)`` bool: key ``j`` is in query ``i``'s row of ``key_index``; and the ``(N, N)`` bias of
    ``log_weight`` (0 where not sampled) when it is given."""
    rows = key_index.shape[0]
    slot = torch.where(key_index >= 0, key_index, length)  # padding to a dropped extra column
    sampled = torch.zeros(rows, length + 1, dtype=torch.bool, device=key_index.device).scatter(1, slot, True)
    segment = torch.arange(length, device=key_index.device) // segment_size
    if log_weight is None:
        return sampled[segment, :length], None
    bias = torch.zeros(rows, length + 1, dtype=log_weight.dtype, device=key_index.device)
    bias = bias.scatter(1, slot, torch.where(key_index >= 0, log_weight, 0))
    return sampled[segment, :length], bias[segment, :length]


def ssa_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, key_index: torch.Tensor,
                  segment_size: int, is_causal: bool, log_weight: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``softmax(q kᵀ · scale + log_weight, masked) v`` over the whole sequence; O(N^2) time and memory."""
    length = query.shape[2]
    visible, bias = subsample_mask(key_index, segment_size, length, log_weight)
    if is_causal:
        visible = visible & torch.ones(length, length, dtype=torch.bool, device=query.device).tril()
    return dense_attention(query, key, value, mask=visible, scale=scale,
                           bias=None if bias is None else bias.to(query.dtype))
