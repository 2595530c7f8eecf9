"""SOFT, softmax-free attention (arXiv 2110.11945): reference and Newton-inverse implementations."""

from attnzoo.ops.soft.functional import soft_attention
from attnzoo.ops.soft.newton import newton_inverse

__all__ = ["newton_inverse", "soft_attention"]
