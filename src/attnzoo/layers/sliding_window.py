"""Token-mixer layers of the 1-D sliding-window family (arXiv 2406.05678): sliding window with sinks, S²-Attn, SF-Attn.

Each layer maps ``(B, N, C) -> (B, N, C)``: one ``qkv`` Linear, ``num_heads`` heads of ``C / num_heads``
channels, the functional op of :mod:`attnzoo.ops.sliding_window`, and an output projection.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from attnzoo.layers.cache import KVCache, SlidingWindowKVCache, check_cache, layer_place
from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.sliding_window.functional import (
    check_window,
    shifted_sparse_attention,
    sink_focused_attention,
    sliding_window_attention,
)
from attnzoo.validation import check_flag, check_scale, per_axis


class SequenceAttention(ShowsOptions, nn.Module):
    """Multi-head attention on ``(B, N, C)`` whose head mixing is :meth:`attend` (one op of this family).

    A subclass that can decode sets :attr:`cache_kind` and defines ``new_cache``; ``forward(x, cache=...)`` then
    appends the new keys and values to the cache and attends the new queries to what it returns."""

    cache_kind: ClassVar[type[KVCache] | None] = None
    """The cache :meth:`forward` takes (``None``: the layer cannot decode with a cache)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, check_heads(dim, num_heads)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        check_flag("qkv_bias", qkv_bias)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **masks: torch.Tensor
               ) -> torch.Tensor:
        """``(B, heads, N, head_dim)`` -> ``(B, heads, N, head_dim)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (True = padding) and packed
        ``cu_seqlens`` as in :mod:`attnzoo.ops.dropin`, passed to the op (whose implementations declare which
        they run: S²-Attn and SF-Attn refuse packed sequences with NotSupportedError). ``cache`` (layers with a
        :attr:`cache_kind`): ``x`` is the next ``N`` tokens after those cached."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        masks = {name: m for name, m in (("key_padding_mask", key_padding_mask), ("cu_seqlens", cu_seqlens))
                 if m is not None}
        if cache is not None:
            if self.cache_kind is None:
                raise TypeError(f"cache={type(cache).__name__}: {type(self).__name__} cannot decode with a cache "
                                "(its groups are positions of the whole sequence); call it on the whole sequence")
            check_cache(self, cache, self.cache_kind, x, **masks)
        query, key, value = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        options: dict[str, int] = {}
        if cache is not None:
            key, value = cache.update(key, value)
            options = self.cached_options(key.shape[2])
        return self.proj(merge_heads(self.attend(query, key, value, **masks, **options)))

    def cached_options(self, num_keys: int) -> dict[str, int]:
        """Options of :meth:`attend` that differ when the ``num_keys`` keys come from a cache (none here)."""
        return {}


class SlidingWindowAttention(SequenceAttention):
    """Sliding-window attention layer (Mistral-style causal window, or centred bidirectional window) with
    optional global sink tokens: ``(B, N, C) -> (B, N, C)``.

    Decoding (causal only): ``new_cache`` makes a :class:`~attnzoo.layers.cache.SlidingWindowKVCache` holding the
    sinks and the last ``window - 1`` keys and values, so memory stays at ``num_sink_tokens + window - 1`` tokens
    and a step costs ``O((window + num_sink_tokens) C)``."""

    cache_kind = SlidingWindowKVCache

    def __init__(self, dim: int, num_heads: int, window: int, is_causal: bool = True, num_sink_tokens: int = 0,
                 qkv_bias: bool = True, scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, qkv_bias, scale, impl)
        self.window, self.is_causal = check_window(window, is_causal), is_causal
        (self.num_sink_tokens,) = per_axis(num_sink_tokens, 1, "num_sink_tokens", minimum=0)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> SlidingWindowKVCache:
        """An empty :class:`~attnzoo.layers.cache.SlidingWindowKVCache` (dtype and device default to the
        layer's); ``ValueError`` for a bidirectional window, whose outputs need later tokens."""
        if not self.is_causal:
            raise ValueError(f"{type(self).__name__} with is_causal=False cannot decode with a cache: its centred "
                             "window reads later tokens; build it with is_causal=True")
        dtype, device = layer_place(self, dtype, device)
        return SlidingWindowKVCache(self, batch_size, self.num_heads, self.head_dim, self.window,
                                    self.num_sink_tokens, dtype=dtype, device=device, max_length=max_length)

    def cached_options(self, num_keys: int) -> dict[str, int]:
        """While fewer than ``num_sink_tokens`` tokens exist, all of them are sinks: the op is given
        ``min(num_sink_tokens, num_keys)`` (the same mask, since every key is then visible causally either way),
        so decoding can start from a prompt shorter than the sinks; without a cache the op's check stands."""
        return {"num_sink_tokens": min(self.num_sink_tokens, num_keys)}

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_sink_tokens: int | None = None,
               **masks: torch.Tensor) -> torch.Tensor:
        sinks = self.num_sink_tokens if num_sink_tokens is None else num_sink_tokens
        return sliding_window_attention(query, key, value, self.window, self.is_causal, sinks, self.scale, self.impl,
                                        **masks)


class ShiftedSparseAttention(SequenceAttention):
    """LongLoRA S²-Attn layer: causal attention in groups of ``group_size``, half the heads shifted by
    ``group_size // 2``: ``(B, N, C) -> (B, N, C)``; ``N`` must be a multiple of ``group_size``."""

    def __init__(self, dim: int, num_heads: int, group_size: int, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, qkv_bias, scale, impl)
        (self.group_size,) = per_axis(group_size, 1, "group_size")

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **masks: torch.Tensor
               ) -> torch.Tensor:
        return shifted_sparse_attention(query, key, value, self.group_size, self.scale, self.impl, **masks)


class SinkFocusedAttention(SequenceAttention):
    """SinkLoRA SF-Attn layer: S²-Attn groups without wrap-around plus ``num_sink_tokens`` global sink tokens:
    ``(B, N, C) -> (B, N, C)``; ``N`` must be a multiple of ``group_size`` and at least ``num_sink_tokens``."""

    def __init__(self, dim: int, num_heads: int, group_size: int, num_sink_tokens: int = 4, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, qkv_bias, scale, impl)
        (self.group_size,) = per_axis(group_size, 1, "group_size")
        (self.num_sink_tokens,) = per_axis(num_sink_tokens, 1, "num_sink_tokens", minimum=0)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **masks: torch.Tensor
               ) -> torch.Tensor:
        return sink_focused_attention(query, key, value, self.group_size, self.num_sink_tokens, self.scale,
                                      self.impl, **masks)
