"""Polarized self-attention (arXiv 2107.00782): channel-only and spatial-only gates, parallel or sequential, the
paper's and the official code's forms; reference and reassociated paths."""

from attnzoo.ops.psa.functional import polarized_self_attention

__all__ = ["polarized_self_attention"]
