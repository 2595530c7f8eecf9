"""Pointer attention (Pointer Networks, arXiv 1506.03134): additive attention whose softmax over the input
positions is the output."""

from attnzoo.ops.pointer.functional import pointer_attention

__all__ = ["pointer_attention"]
