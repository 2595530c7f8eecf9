"""ULSAM, the ultra-lightweight subspace attention module (arXiv 2006.15102): a spatial softmax map per channel
subspace; reference (the official per-subspace loop) and grouped paths."""

from attnzoo.ops.ulsam.functional import subspace_attention

__all__ = ["subspace_attention"]
