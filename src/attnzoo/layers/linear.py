"""Linear-attention token mixers ``(B, N, C) -> (B, N, C)``: the TransNormerLLM lightning block (arXiv 2405.17381) and
feature-map linear attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.cache import (
    RecurrentStateCache,
    check_cache,
    layer_place,
    recurrent_options,
    recurrent_output,
)
from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.lightning.functional import lightning_attention, tnl_slopes
from attnzoo.ops.linear.feature_linear import linear_attention
from attnzoo.ops.linear.feature_maps import FEATURE_MAPS, random_projection
from attnzoo.validation import check_flag, check_int, check_optional_int


class LightningAttention(ShowsOptions, nn.Module):
    """TransNormerLLM attention block (official ``examples/module/tnl_attn.py``), causal.

    ``q, k, v = SiLU(x W_q), SiLU(x W_k), SiLU(x W_v)`` (no bias); per-head lightning attention with the
    layer-scaled ALiBi slopes :func:`tnl_slopes` (a fixed buffer); ``LayerNorm`` of the merged heads (TNL itself
    uses SRMSNorm); times the low-rank output gate ``σ(x W_1 W_2)`` (``dim -> head_dim -> dim``, no activation
    between); ``o_proj``. ``block_size`` and ``impl`` go to :func:`lightning_attention`.

    Decoding: ``new_cache`` makes a :class:`~attnzoo.layers.cache.RecurrentStateCache` of the ``(H, D, D)``
    state ``S_t = λ S_(t-1) + k_t v_tᵀ`` (constant in the length); ``forward(x, cache=...)`` starts the op from
    it (``initial_state``) and stores its ``final_state``. Everything else of the block acts per token.
    """

    def __init__(self, dim: int, num_heads: int, layer_idx: int = 0, num_layers: int = 12, bias: bool = False,
                 block_size: int = 64, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        check_int("block_size", block_size)
        check_flag("bias", bias)
        self.dim, self.num_heads, self.block_size, self.impl = dim, num_heads, block_size, impl
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim, bias=bias) for _ in range(4))
        self.norm = nn.LayerNorm(dim)
        self.output_gate = nn.Sequential(nn.Linear(dim, head_dim, bias=bias), nn.Linear(head_dim, dim, bias=bias))
        self.register_buffer("slopes", tnl_slopes(num_heads, layer_idx, num_layers).float(), persistent=False)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> RecurrentStateCache:
        """A zero :class:`~attnzoo.layers.cache.RecurrentStateCache` of ``(num_heads, head_dim, head_dim)``
        per sequence (dtype and device default to the layer's)."""
        dtype, device = layer_place(self, dtype, device)
        head_dim = self.dim // self.num_heads
        return RecurrentStateCache(self, batch_size, (self.num_heads, head_dim, head_dim), dtype, device, max_length)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, cache: RecurrentStateCache | None = None) -> torch.Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (True = padding) and packed
        ``cu_seqlens`` go to :func:`lightning_attention`. With ``cache`` (:meth:`new_cache`), ``x`` is the next
        ``N`` tokens after those the cache's state summarises."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        if cache is not None:
            check_cache(self, cache, RecurrentStateCache, x, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
        q, k, v = (split_heads(F.silu(proj(x)), self.num_heads) for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = lightning_attention(q, k, v, decay=self.slopes.to(q.dtype), block_size=self.block_size, impl=self.impl,
                                  key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens, **recurrent_options(cache))
        out = recurrent_output(cache, out, x.shape[1])
        out = self.norm(merge_heads(out)) * torch.sigmoid(self.output_gate(x))
        return self.o_proj(out)


class LinearAttention(ShowsOptions, nn.Module):
    """Feature-map linear attention mixer: ``qkv`` projection, heads, :func:`linear_attention`, output projection.

    ``feature_map`` as in :data:`FEATURE_MAPS`; ``"softmax_kernel"`` draws ``num_features`` (default head dim)
    random features from ``seed`` once, as a fixed buffer. Causal by default (a language-model mixer).

    Decoding (causal only): ``new_cache`` makes a :class:`~attnzoo.layers.cache.RecurrentStateCache` of the
    ``(H, M, E + normalize)`` state ``Σ φ(k) [v, 1]ᵀ`` of :func:`linear_attention` (``M`` features, the
    normaliser's ``Σ φ(k)`` as the last column when normalising); ``forward(x, cache=...)`` continues from it.
    """

    def __init__(self, dim: int, num_heads: int, feature_map: str = "elu", is_causal: bool = True,
                 normalize: bool = True, num_features: int | None = None, seed: int = 0, qkv_bias: bool = False,
                 block_size: int = 64, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        check_int("block_size", block_size)
        check_int("seed", seed, 0)
        for name, flag in (("is_causal", is_causal), ("normalize", normalize), ("qkv_bias", qkv_bias)):
            check_flag(name, flag)
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map={feature_map!r}: expected one of {list(FEATURE_MAPS)}")
        self.dim, self.num_heads, self.feature_map = dim, num_heads, feature_map
        self.is_causal, self.normalize, self.block_size, self.impl = is_causal, normalize, block_size, impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        projection = None
        if feature_map == "softmax_kernel":
            projection = random_projection(head_dim, check_optional_int("num_features", num_features) or head_dim,
                                           seed)
        self.register_buffer("projection", projection, persistent=False)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> RecurrentStateCache:
        """A zero :class:`~attnzoo.layers.cache.RecurrentStateCache` of ``(num_heads, M, head_dim + normalize)``
        per sequence (dtype and device default to the layer's); ``ValueError`` when ``is_causal=False``."""
        if not self.is_causal:
            raise ValueError("LinearAttention with is_causal=False cannot decode with a cache: each output sums over "
                             "later tokens; build it with is_causal=True")
        dtype, device = layer_place(self, dtype, device)
        head_dim = self.dim // self.num_heads
        features = head_dim if self.projection is None else self.projection.shape[-1]
        return RecurrentStateCache(self, batch_size, (self.num_heads, features, head_dim + self.normalize), dtype,
                                   device, max_length)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, cache: RecurrentStateCache | None = None) -> torch.Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (True = padding) and packed
        ``cu_seqlens`` go to :func:`linear_attention`. With ``cache`` (:meth:`new_cache`), ``x`` is the next
        ``N`` tokens after those the cache's state summarises."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        if cache is not None:
            check_cache(self, cache, RecurrentStateCache, x, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        projection = None if self.projection is None else self.projection.to(q.dtype)
        out = linear_attention(q, k, v, self.feature_map, is_causal=self.is_causal, normalize=self.normalize,
                               projection=projection, block_size=self.block_size, impl=self.impl,
                               key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens, **recurrent_options(cache))
        return self.proj(merge_heads(recurrent_output(cache, out, x.shape[1])))
