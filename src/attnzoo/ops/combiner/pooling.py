"""Combiner-Fixed's segment summaries (official ``pooling_summary``, ``combiner/tf/approx_attention.py``):
``activation-pooling`` with activation ``identity`` or ``relu`` and pooling ``max``, ``mean`` or ``sum`` over the
tokens of each segment, applied alike to the queries (the span query) and the keys (the span key). The official
``deepset`` activation (a learned dense layer before the ReLU) has parameters and is not offered here.

The official code scales the queries by ``1/sqrt(d)`` before pooling them; every summary here commutes with a
positive scale (``pool(c·x) = c·pool(x)`` for ``c > 0``), so the ops apply ``scale`` to the logits instead.
"""

from __future__ import annotations

import torch

SUMMARIES = ("identity-max", "identity-mean", "identity-sum", "relu-max", "relu-mean", "relu-sum")
"""The official ``local_summary`` choices without parameters; ``"identity-max"`` is the official default
(``SqrtFixedFullLM``)."""


def check_summary(summary: str) -> str:
    """``summary`` is one of :data:`SUMMARIES`."""
    if not isinstance(summary, str) or summary not in SUMMARIES:
        raise ValueError(f"summary={summary!r}: expected one of {SUMMARIES}")
    return summary


def pool_segments(x: torch.Tensor, segment_length: int, summary: str) -> torch.Tensor:
    """``(B, H, N, D)`` -> ``(B, H, N / s, D)``: the summary of each segment of ``s`` consecutive tokens. ``max``
    sends its gradient to the largest entry of each channel (``torch.amax`` splits it evenly between exact ties)."""
    activation, pooling = summary.split("-")
    segments = x.unflatten(2, (-1, segment_length))
    if activation == "relu":
        segments = torch.relu(segments)
    if pooling == "max":
        return segments.amax(3)
    return segments.mean(3) if pooling == "mean" else segments.sum(3)
