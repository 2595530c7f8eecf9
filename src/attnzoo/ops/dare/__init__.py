"""DARE target attention with decoupled attention / representation embeddings (arXiv 2410.02604), with SDPA and
reference implementations and the TWIN top-k search."""

from attnzoo.ops.dare.functional import dare_attention
from attnzoo.ops.dare.search import top_k_visible

__all__ = ["dare_attention", "top_k_visible"]
