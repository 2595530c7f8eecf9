"""Gated attention through ``torch.nn.functional.scaled_dot_product_attention``: the softmax op's SDPA path
(:func:`attnzoo.ops.softmax.sdpa.softmax_sdpa`, every mask folded into one, SDPA's flash kernels where no mask
is needed) times the gate; autograd adds the gate's product. No attention weights."""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.gated_attention.gate import gate_heads
from attnzoo.ops.softmax.sdpa import softmax_sdpa


def gated_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, gate: torch.Tensor, *, is_causal: bool,
               scale: float, dropin: DropIn) -> torch.Tensor:
    """``gate[..., None] * SDPA(q, k, v)`` for ``(B, Hq, Nq, D)`` queries and a ``(B, Hq, Nq)`` gate."""
    return gate_heads(softmax_sdpa(query, key, value, is_causal=is_causal, scale=scale, dropin=dropin), gate)
