"""DiffQKV attention (Sigma, arXiv 2501.13629): independent K and V head counts and dims, selective V fetching, and
the KV-cache cost model; MHA, MQA and GQA are its special cases."""

from attnzoo.ops.diffqkv.functional import diffqkv_attention
from attnzoo.ops.diffqkv.heads import kv_cache_bytes_per_token, shared_head_index

__all__ = ["diffqkv_attention", "kv_cache_bytes_per_token", "shared_head_index"]
