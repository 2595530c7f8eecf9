"""The dense baseline token mixer: multi-head full softmax attention (:func:`attnzoo.ops.softmax_attention`,
arXiv 1706.03762), registered as the layer of the ``softmax_attention`` variant (alias ``"softmax"``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attnzoo.layers.cache import KVCache, check_cache, layer_place
from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.softmax.functional import softmax_attention
from attnzoo.validation import check_flag, check_real, check_scale


class SoftmaxAttention(ShowsOptions, nn.Module):
    """Multi-head softmax self-attention on ``(B, N, C)``: fused qkv projection, softmax attention, output
    projection.

    ``is_causal=True`` masks the future (position ``t`` attends to positions ``<= t``), as zoology's attention
    baseline (its ``MHA`` with a causal mask); ``is_causal=False`` is full bidirectional attention, as the ViT
    ``Attention`` block. ``dropout`` is attention dropout (zoology uses 0.1), applied during training only.
    ``impl`` picks the op's implementation (``"auto"``: SDPA). Time ``O(N² C)``.

    Decoding (causal only): ``new_cache`` makes a :class:`~attnzoo.layers.cache.KVCache` (``num_heads`` heads of
    ``head_dim``, ``2 · num_heads · head_dim`` values per token), ``forward(x, cache=cache)`` attends the new
    tokens to every cached key (the op's causal mask is bottom-right aligned) in ``O(T (L + T) C)``.
    """

    def __init__(self, dim: int, num_heads: int = 1, is_causal: bool = True, qkv_bias: bool = True,
                 dropout: float = 0.0, scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        check_flag("is_causal", is_causal)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads, self.is_causal = dim, num_heads, is_causal
        self.dropout = check_real("dropout", dropout, inclusive=True)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> KVCache:
        """An empty :class:`~attnzoo.layers.cache.KVCache` for ``forward(x, cache=...)`` (dtype and device
        default to the layer's); ``ValueError`` for a bidirectional layer, whose outputs need later tokens."""
        if not self.is_causal:
            raise ValueError(f"{type(self).__name__} with is_causal=False cannot decode with a cache: each output "
                             "depends on later tokens; build it with is_causal=True")
        dtype, device = layer_place(self, dtype, device)
        return KVCache(self, batch_size, self.num_heads, self.head_dim, dtype=dtype, device=device,
                       max_length=max_length)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """``x``: ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (True = padding) and packed
        ``cu_seqlens`` as in :mod:`attnzoo.ops.dropin`. With ``cache`` (from :meth:`new_cache`), ``x`` holds the
        next ``N`` tokens after those cached: the cache takes their keys and values, and the output equals the
        last ``N`` rows of a forward over the whole sequence."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        if cache is not None:
            check_cache(self, cache, KVCache, x, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        if cache is not None:
            k, v = cache.update(k, v)
        out = self.attend(q, k, v, x, dropout_p=self.dropout if self.training else 0.0,
                          key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
        return self.proj(merge_heads(out))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, x: torch.Tensor,
               **options: Any) -> torch.Tensor:  # noqa: ANN401
        """The heads' attention: ``(B, H, N, d)`` queries, ``(B, H, L, d)`` keys and values (``L`` counts the
        cached tokens) -> ``(B, H, N, d)``, :func:`attnzoo.ops.softmax_attention` with the drop-in ``options``.
        ``x`` is the ``(B, N, C)`` layer input; the softmax variants built on this layer (clipped softmax, gated
        heads) override this method and reuse the projections, the checks and the cache."""
        return softmax_attention(q, k, v, self.is_causal, self.scale, self.impl, **options)


class CausalSoftmaxAttention(SoftmaxAttention):
    """:class:`SoftmaxAttention` with ``is_causal=True`` fixed: the causal language model's dense baseline."""

    def __init__(self, dim: int, num_heads: int = 1, qkv_bias: bool = True, dropout: float = 0.0,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, is_causal=True, qkv_bias=qkv_bias, dropout=dropout, scale=scale, impl=impl)
