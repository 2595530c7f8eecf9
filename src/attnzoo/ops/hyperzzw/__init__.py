"""HyperZ·Z·W's context-dependent convolution (arXiv 2401.17948): depthwise convolution with per-sample
hyper-kernels, by grouped convolution or FFT."""

from attnzoo.ops.hyperzzw.functional import hyperzzw_conv

__all__ = ["hyperzzw_conv"]
