"""LMU memory (arXiv 2402.04882, LMUFormer): the Legendre memory with chunked, FFT, recurrent and reference paths."""

from attnzoo.ops.lmu.functional import lmu_memory

__all__ = ["lmu_memory"]
