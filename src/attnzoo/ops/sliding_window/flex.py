"""The sliding-window family on FlexAttention: the shared mask functions; head-dependent S²-Attn / SF-Attn
patterns get per-head block masks (their ``mask_heads``)."""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.flex import flex_grid_attention
from attnzoo.ops.sliding_window.patterns import SequencePattern


def sequence_flex(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: SequencePattern,
                  scale: float, dropin: DropIn = DropIn()) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N, Dv)`` with compiled FlexAttention. It declares none of the drop-in
    features, so dispatch never hands it a call that uses one."""
    assert not dropin.features, f"flex was dispatched a call using {sorted(dropin.features)}"
    return flex_grid_attention(query, key, value, pattern=pattern, scale=scale)
