"""The weights of polarized self-attention's two branches, grouped, and how the branches combine."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

LAYOUTS = ("parallel", "sequential")
SPATIAL_SOFTMAX = ("channels", "context", "value")


class ChannelGate(NamedTuple):
    """The channel-only branch: ``query`` ``(1, C, 1, 1)``, ``value`` ``(C/2, C, 1, 1)``, ``up`` ``(C, R, 1, 1)``
    (``R = C/2``, or the bottleneck's width) with ``up_bias``; the paper's LayerNorm over C (``norm_*``) or
    ``None``; the official PSA_s bottleneck ``hidden`` ``(R, C/2, 1, 1)`` with its bias and LayerNorm, or
    ``None``."""

    query: torch.Tensor
    value: torch.Tensor
    up: torch.Tensor
    up_bias: torch.Tensor | None
    norm_weight: torch.Tensor | None
    norm_bias: torch.Tensor | None
    hidden: torch.Tensor | None
    hidden_bias: torch.Tensor | None
    hidden_norm_weight: torch.Tensor | None
    hidden_norm_bias: torch.Tensor | None


class SpatialGate(NamedTuple):
    """The spatial-only branch: ``query`` and ``value``, ``(C/2, C, 1, 1)`` each."""

    query: torch.Tensor
    value: torch.Tensor


def combine(x: torch.Tensor, layout: str, channel_gate: Callable[[torch.Tensor], torch.Tensor],
            spatial_gate: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``parallel``: ``A_ch(x) ⊙ x + A_sp(x) ⊙ x``; ``sequential``: ``y = A_ch(x) ⊙ x``, then ``A_sp(y) ⊙ y``."""
    if layout == "parallel":
        return x * channel_gate(x) + x * spatial_gate(x)
    y = x * channel_gate(x)
    return y * spatial_gate(y)
