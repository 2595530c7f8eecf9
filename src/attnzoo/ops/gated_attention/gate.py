"""The gate of gated attention (arXiv 2306.12929, Section 4.2, eq. 5): ``out_h = π_h ⊙ attention_h`` with
``π = sigmoid(G(x))`` of shape ``(B, H, N)``, one value per head and token in [0, 1]."""

from __future__ import annotations

import torch

from attnzoo.validation import check_tensor_like


def check_gate(gate: torch.Tensor, query: torch.Tensor) -> None:
    """``gate`` is ``(B, Hq, Nq)`` (one value per query head and query token of the ``(B, Hq, Nq, D)`` query) in
    the query's dtype and device, with values in [0, 1] (the paper's sigmoid gate; checked in eager calls, where
    it costs one pass over the gate; not while ``torch.compile`` traces). A NaN passes and propagates."""
    check_tensor_like("gate", gate, tuple(query.shape[:3]), query)
    if torch.compiler.is_compiling():
        return
    outside = (gate < 0) | (gate > 1)
    if bool(outside.any()):
        bad = gate[outside]
        raise ValueError(f"gate has {bad.numel()} values outside [0, 1] (from {bad.min().item():.4g} to "
                         f"{bad.max().item():.4g}); expected a gate in [0, 1], e.g. torch.sigmoid(logits)")


def gate_heads(out: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``(B, H, N, Dv)`` head outputs times the ``(B, H, N)`` gate: ``out[b, h, i] · gate[b, h, i]``."""
    return out * gate[..., None]
