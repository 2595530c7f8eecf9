"""SHViT's single-head attention (arXiv 2401.16456): the functional op (reference and SDPA implementations)."""

from attnzoo.ops.single_head.functional import single_head_attention

__all__ = ["single_head_attention"]
