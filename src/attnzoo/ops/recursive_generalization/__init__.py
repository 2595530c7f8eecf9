"""RG-SA, recursive-generalization self-attention (RGT, arXiv 2303.06373): reference and SDPA implementations."""

from attnzoo.ops.recursive_generalization.functional import recursive_generalization_attention

__all__ = ["recursive_generalization_attention"]
