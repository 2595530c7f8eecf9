"""GC ViT global query attention (arXiv 2206.09959): reference and windowed implementations."""

from attnzoo.ops.global_query.functional import global_query_attention

__all__ = ["global_query_attention"]
