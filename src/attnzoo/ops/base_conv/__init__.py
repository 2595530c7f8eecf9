"""BaseConv (arXiv 2312.04927, Zoology): gated causal convolution with FFT, conv1d and reference implementations."""

from attnzoo.ops.base_conv.functional import base_conv

__all__ = ["base_conv"]
