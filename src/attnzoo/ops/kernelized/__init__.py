"""Kernelized attention with relative positional encoding (arXiv 2106.12566): reference and FFT implementations."""

from attnzoo.ops.kernelized.functional import kernelized_rpe_attention

__all__ = ["kernelized_rpe_attention"]
