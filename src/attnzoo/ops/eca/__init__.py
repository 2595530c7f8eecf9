"""ECA, efficient channel attention (arXiv 1910.03151): a k-tap 1-D convolution across the pooled channels gates
them; reference (explicit band matrix) and conv1d paths."""

from attnzoo.ops.eca.functional import eca_kernel_size, efficient_channel_attention

__all__ = ["eca_kernel_size", "efficient_channel_attention"]
