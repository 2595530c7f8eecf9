"""DLGSANet's sparse global self-attention, SparseGSA (arXiv 2301.02031): ReLU transposed (channel) attention over
all pixels, optional top-k; reference and Gram implementations."""

from attnzoo.ops.sparse_global.functional import sparse_global_attention

__all__ = ["sparse_global_attention"]
