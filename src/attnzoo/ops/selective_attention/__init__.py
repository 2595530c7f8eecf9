"""SDANet's selective dense attention (arXiv 2108.07020): channel and spatial selection among pyramid levels."""

from attnzoo.ops.selective_attention.functional import selective_dense_attention

__all__ = ["selective_dense_attention"]
