"""DiffQKV attention layer (Sigma, Lin et al. 2025, arXiv 2501.13629): differentially compressed K and V (fewer K
heads, optionally a halved K head dim) and augmented Q, on :func:`attnzoo.ops.diffqkv_attention`; the layer of the
``diffqkv_attention`` variant (alias ``"diffqkv"``)."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.cache import KVCache, check_cache, layer_place
from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.diffqkv.functional import diffqkv_attention
from attnzoo.ops.diffqkv.heads import kv_cache_bytes_per_token
from attnzoo.validation import check_flag, check_int, check_optional_int, check_scale


def check_divides(name: str, heads: int, num_heads: int) -> int:
    """A layer's K or V head count ``name``: an int >= 1 dividing ``num_heads``; returns it."""
    check_int(name, heads)
    if num_heads % heads:
        raise ValueError(f"{name}={heads}: expected a divisor of num_heads={num_heads} (query head i reads head "
                         f"floor(i * {name} / num_heads), in equal groups)")
    return heads


class DiffQKVCache(KVCache):
    """The decoding cache of :class:`DiffQKVAttention`: past keys ``(B, Hk, L, Dk)`` and values ``(B, Hv, L, Dv)``,
    K and V with their own head counts (Sigma stores them separately, Section 3.2 "Differential Management of KV
    Cache"; a :class:`~attnzoo.layers.cache.KVCache` otherwise). Keys are held as projected, before the K
    transform. ``bytes_per_token = (Hk Dk + Hv Dv) · itemsize``, :func:`attnzoo.ops.kv_cache_bytes_per_token`."""

    def __init__(self, layer: nn.Module, batch_size: int, num_k_heads: int, key_dim: int, num_v_heads: int,
                 value_dim: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 max_length: int | None = None) -> None:
        super().__init__(layer, batch_size, num_k_heads, key_dim, value_dim, dtype, device, max_length)
        self.num_v_heads = check_int("num_v_heads", num_v_heads)
        self.values = torch.empty(batch_size, num_v_heads, 0, self.value_dim, dtype=dtype, device=self.device)

    @property
    def bytes_per_token(self) -> int:
        return kv_cache_bytes_per_token(self.num_heads, self.key_dim, self.num_v_heads, self.value_dim, self.dtype)

    def update(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``key`` ``(B, Hk, T, Dk)`` and ``value`` ``(B, Hv, T, Dv)``; return every cached key and value
        (these ``T`` last) and count the ``T`` tokens as consumed."""
        self._check_stored("key", key, (self.batch_size, self.num_heads, -1, self.key_dim))
        self._check_stored("value", value, (self.batch_size, self.num_v_heads, key.shape[2], self.value_dim))
        self.keys, self.values = torch.cat([self.keys, key], dim=2), torch.cat([self.values, value], dim=2)
        self.length += key.shape[2]
        return self.keys, self.values


class AugmentedQuery(nn.Module):
    """Sigma's augmented Q (Appendix E, ``modeling_sigma.py`` as printed there): a gated MLP on the projected
    queries, ``q ← W_down(act(W_gate q) ⊙ W_up q)`` with an intermediate dim ``aug_dim`` (Sigma-1.5B: 3072 for a
    hidden size of 2048, "×1.5 appears optimal", Section 2, Table 14). Q is not cached, so this costs compute,
    not KV-cache memory. ``act`` is SiLU (Sigma's SwiGLU, Table 14; the paper prints ``self.act_fn`` without
    defining it) and the three maps have no bias (not shown in the paper: a choice)."""

    def __init__(self, dim: int, aug_dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, aug_dim, bias=False)
        self.up = nn.Linear(dim, aug_dim, bias=False)
        self.down = nn.Linear(aug_dim, dim, bias=False)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.silu(self.gate(q)) * self.up(q))


class DiffQKVAttention(ShowsOptions, nn.Module):
    """DiffQKV self-attention on ``(B, N, C)`` (Sigma, Section 2): ``num_heads`` query heads of ``head_dim_v``,
    ``num_k_heads`` key heads of ``head_dim_k`` and ``num_v_heads`` value heads of ``head_dim_v``, K and V shared
    independently (query head ``i`` reads key head ``⌊i n_hk / n_hq⌋`` and value head ``⌊i n_hv / n_hq⌋``; both
    counts must divide ``num_heads``). Sigma-1.5B: 32 query heads, 4 K heads, 16 V heads of 64, ``aug_q_dim``
    3072 (Table 14).

    - ``head_dim_k < head_dim_v`` ("half K dim", Table 2): keys are projected and cached at ``head_dim_k`` and mapped
      up to ``head_dim_v`` by a trainable feed-forward layer before the dot product (Section 2: "transforming the
      dimension of K to the same as V through another feed-forward layer"); the paper does not give its form:
      here one bias-free ``Linear(head_dim_k, head_dim_v)`` shared by the K heads. ``head_dim_k > head_dim_v``
      has no such transform and is refused. ``None``: ``head_dim_v``, itself ``dim // num_heads`` by default.
    - ``aug_q_dim``: :class:`AugmentedQuery` of that intermediate dim after the Q projection (``None``: none).
    - ``top_k``: selective V fetching (Appendix B.2, "Sel.V-top100"): each query sums the values of its ``top_k``
      highest-scoring keys only, weighted by the softmax over all its keys (:func:`attnzoo.ops.diffqkv_attention`).
      A budget: a sequence of at most ``top_k`` tokens uses every key (exact), as a causal query that sees fewer.

    Decoding (causal only): :meth:`new_cache` makes a :class:`DiffQKVCache` (keys at ``head_dim_k``, before the
    K transform), ``forward(x, cache=cache)`` attends the new tokens to every cached key.

    With ``num_k_heads = num_v_heads`` and no K transform or AugQ this is GQA (MHA when they equal ``num_heads``,
    MQA when 1). ``is_causal`` masks the future; ``impl`` picks the op's implementation. Time
    ``O(N² num_heads head_dim_v)`` for attention, plus ``O(N num_k_heads head_dim_k head_dim_v)`` for the K transform.
    """

    def __init__(self, dim: int, num_heads: int = 1, num_k_heads: int | None = None, num_v_heads: int | None = None,
                 head_dim_k: int | None = None, head_dim_v: int | None = None, aug_q_dim: int | None = None,
                 top_k: int | None = None, is_causal: bool = True, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        if head_dim_v is None:
            head_dim_v = check_heads(dim, num_heads)
        else:
            check_int("dim", dim)
            check_int("num_heads", num_heads)
            check_int("head_dim_v", head_dim_v)
        self.num_k_heads = check_divides("num_k_heads", num_heads if num_k_heads is None else num_k_heads, num_heads)
        self.num_v_heads = check_divides("num_v_heads", num_heads if num_v_heads is None else num_v_heads, num_heads)
        self.head_dim_k = check_int("head_dim_k", head_dim_v if head_dim_k is None else head_dim_k)
        if self.head_dim_k > head_dim_v:
            raise ValueError(f"head_dim_k={self.head_dim_k}: expected at most head_dim_v={head_dim_v} (a smaller K "
                             "head dim is mapped up to the value/query head dim by a feed-forward layer; a larger "
                             "one has no transform in Sigma)")
        self.dim, self.num_heads, self.head_dim_v = dim, num_heads, head_dim_v
        self.aug_q_dim = check_optional_int("aug_q_dim", aug_q_dim)
        self.top_k = check_optional_int("top_k", top_k)
        self.is_causal = check_flag("is_causal", is_causal)
        check_flag("qkv_bias", qkv_bias)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        inner = num_heads * head_dim_v
        self.q_proj = nn.Linear(dim, inner, bias=qkv_bias)
        self.aug_q = AugmentedQuery(inner, aug_q_dim) if aug_q_dim is not None else None
        self.k_proj = nn.Linear(dim, self.num_k_heads * self.head_dim_k, bias=qkv_bias)
        self.k_transform = nn.Linear(self.head_dim_k, head_dim_v, bias=False) if self.head_dim_k < head_dim_v else None
        self.v_proj = nn.Linear(dim, self.num_v_heads * head_dim_v, bias=qkv_bias)
        self.o_proj = nn.Linear(inner, dim)

    def kv_cache_bytes_per_token(self, dtype: torch.dtype | None = None) -> int:
        """Bytes of K/V cache this layer adds per token and sequence: ``n_hk d_hk + n_hv d_hv`` elements (keys
        cached before the K transform) of ``dtype`` (default: the parameters'), Sigma's Eq. 1."""
        dtype = self.q_proj.weight.dtype if dtype is None else dtype
        return kv_cache_bytes_per_token(self.num_k_heads, self.head_dim_k, self.num_v_heads, self.head_dim_v, dtype)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> DiffQKVCache:
        """An empty :class:`DiffQKVCache` for ``forward(x, cache=...)`` (dtype and device default to the layer's);
        ``ValueError`` for a bidirectional layer, whose outputs need later tokens."""
        if not self.is_causal:
            raise ValueError(f"{type(self).__name__} with is_causal=False cannot decode with a cache: each output "
                             "depends on later tokens; build it with is_causal=True")
        dtype, device = layer_place(self, dtype, device)
        return DiffQKVCache(self, batch_size, self.num_k_heads, self.head_dim_k, self.num_v_heads, self.head_dim_v,
                            dtype=dtype, device=device, max_length=max_length)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, N, C)`` -> queries ``(B, Hq, N, d_hv)`` (through AugQ), keys ``(B, Hk, N, d_hk)`` as cached (before
        the K transform), values ``(B, Hv, N, d_hv)``."""
        q = self.q_proj(x)
        if self.aug_q is not None:
            q = self.aug_q(q)
        return (split_heads(q, self.num_heads), split_heads(self.k_proj(x), self.num_k_heads),
                split_heads(self.v_proj(x), self.num_v_heads))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None,
               cu_seqlens: torch.Tensor | None) -> torch.Tensor:
        """The attention of the projected heads (keys at ``head_dim_k``) -> ``(B, Hq, N, d_hv)``."""
        if self.k_transform is not None:
            k = self.k_transform(k)
        top_k = self.top_k if self.top_k is not None and self.top_k < k.shape[2] else None
        return diffqkv_attention(q, k, v, self.is_causal, self.scale, self.impl, top_k=top_k,
                                 key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, cache: DiffQKVCache | None = None) -> torch.Tensor:
        """``x``: ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (True = padding) and packed
        ``cu_seqlens`` as in :mod:`attnzoo.ops.dropin`. With ``cache`` (from :meth:`new_cache`), ``x`` holds the
        next ``N`` tokens after those cached: the cache takes their keys and values, and the output equals the
        last ``N`` rows of a forward over the whole sequence."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        if cache is not None:
            check_cache(self, cache, DiffQKVCache, x, key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
        q, k, v = self.project(x)
        if cache is not None:
            k, v = cache.update(k, v)
        return self.o_proj(merge_heads(self.attend(q, k, v, key_padding_mask, cu_seqlens)))
