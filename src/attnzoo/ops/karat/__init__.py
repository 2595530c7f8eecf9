"""Fourier-KArAt (arXiv 2503.10632): learnable low-rank Fourier replacement of softmax; blocked and reference paths."""

from attnzoo.ops.karat.functional import fourier_karat

__all__ = ["fourier_karat"]
