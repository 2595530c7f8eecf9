"""Full softmax attention (arXiv 1706.03762), the dense baseline, with every drop-in feature."""

from attnzoo.ops.softmax.functional import softmax_attention

__all__ = ["softmax_attention"]
