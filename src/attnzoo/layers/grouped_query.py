"""Grouped-query attention (Ainslie et al. 2023, arXiv 2305.13245): ``num_kv_heads`` key/value heads shared by
groups of query heads; multi-head attention when ``num_kv_heads == num_heads``, multi-query attention (Shazeer 2019,
arXiv 1911.02150) when 1. The layer of the ``grouped_query_attention`` variant (alias ``"gqa"``)."""

from __future__ import annotations

import torch

from attnzoo.layers.diffqkv import DiffQKVAttention, check_divides
from attnzoo.ops.softmax.functional import softmax_attention
from attnzoo.validation import check_int, check_real


class GroupedQueryAttention(DiffQKVAttention):
    """Grouped-query self-attention on ``(B, N, C)``: query heads of ``dim // num_heads``, ``num_kv_heads`` K/V heads
    (a divisor of ``num_heads``; ``None``: ``num_heads``, MHA), query head ``i`` reading K/V head
    ``i // (num_heads / num_kv_heads)``, as HF transformers' ``LlamaAttention`` (``repeat_kv``) and SDPA's
    ``enable_gqa``. Projections ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` (Llama's names and layout; no RoPE:
    the layer sees positions only through the causal mask). The special case of :class:`DiffQKVAttention` with
    equal K and V heads and dims (Sigma, Appendix B.1), run on :func:`attnzoo.ops.softmax_attention` with
    ``enable_gqa`` (SDPA under ``impl="auto"``). ``dropout`` is attention dropout, in training only. Decodes with
    the same cache (``new_cache``, ``forward(x, cache=cache)``): ``2 · num_kv_heads · head_dim`` values per token.
    Time ``O(N² C)``.
    """

    def __init__(self, dim: int, num_heads: int = 1, num_kv_heads: int | None = None, is_causal: bool = True,
                 qkv_bias: bool = True, dropout: float = 0.0, scale: float | None = None, impl: str = "auto") -> None:
        check_int("num_heads", num_heads)
        num_kv_heads = check_divides("num_kv_heads", num_heads if num_kv_heads is None else num_kv_heads, num_heads)
        super().__init__(dim, num_heads, num_k_heads=num_kv_heads, num_v_heads=num_kv_heads, is_causal=is_causal,
                         qkv_bias=qkv_bias, scale=scale, impl=impl)
        self.num_kv_heads = self.num_k_heads
        self.dropout = check_real("dropout", dropout, inclusive=True)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None,
               cu_seqlens: torch.Tensor | None) -> torch.Tensor:
        return softmax_attention(q, k, v, self.is_causal, self.scale, self.impl,
                                 key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens,
                                 enable_gqa=self.num_kv_heads != self.num_heads,
                                 dropout_p=self.dropout if self.training else 0.0)
