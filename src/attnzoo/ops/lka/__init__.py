"""LKA, large kernel attention (VAN, arXiv 2202.09741): depthwise, dilated depthwise and pointwise convolutions
multiplied into the input; reference (tap sums) and conv2d paths."""

from attnzoo.ops.lka.functional import large_kernel_attention

__all__ = ["large_kernel_attention"]
