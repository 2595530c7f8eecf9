"""Gated attention (Bondarenko et al. 2023, arXiv 2306.12929): each head's output scaled by a gate in [0, 1]."""

from attnzoo.ops.gated_attention.functional import gated_attention
from attnzoo.ops.gated_attention.gate import gate_heads

__all__ = ["gate_heads", "gated_attention"]
