"""The oracle of gated attention: the dense softmax reference (every drop-in feature) times the gate."""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.gated_attention.gate import gate_heads
from attnzoo.ops.softmax.reference import softmax_reference


def gated_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, gate: torch.Tensor, *,
                    is_causal: bool, scale: float,
                    dropin: DropIn) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``gate ⊙ softmax(q kᵀ · scale + mask) v`` through dense scores and an explicit ``(Nq, Nk)`` mask;
    O(Nq · Nk) time and memory. ``return_weights``: ``(out, softmax probabilities)``."""
    result = softmax_reference(query, key, value, is_causal=is_causal, scale=scale, dropin=dropin)
    if dropin.return_weights:
        return gate_heads(result[0], gate), result[1]
    return gate_heads(result, gate)
