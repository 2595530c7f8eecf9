"""Clipped softmax attention (Bondarenko et al. 2023, arXiv 2306.12929): attention heads that can do nothing."""

from attnzoo.ops.clipped_softmax.functional import clipped_softmax_attention
from attnzoo.ops.clipped_softmax.stretch import clipped_softmax, gamma_from_alpha

__all__ = ["clipped_softmax", "clipped_softmax_attention", "gamma_from_alpha"]
