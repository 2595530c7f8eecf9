"""Kernelized attention with RPE layer (arXiv 2106.12566): a ``(B, N, C)`` token mixer."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.kernelized.functional import (
    default_num_features,
    kernelized_rpe_attention,
)
from attnzoo.ops.linear.feature_maps import random_projection
from attnzoo.validation import check_flag, check_int, check_optional_int


class KernelizedRPEAttention(ShowsOptions, nn.Module):
    """Multi-head kernelized attention with a learnable RPE per head and offset: ``(B, N, C) -> (B, N, C)``.

    ``qkv`` / ``proj`` linear maps; ``rpe`` ``(heads, 2·max_len - 1)`` logits ``b_t`` (zero init, the paper's safe
    default), of which a length-``N`` input reads the central ``2N - 1``; the random projection ``(head_dim, m)``
    is a fixed buffer drawn from ``seed`` (``m = num_features``, default ``int(d ln d)``), shared by the heads.
    ``is_causal`` keeps only offsets ``t >= 0``. ``N`` must be at most ``max_len``. Under ``torch.autocast``
    the parameters follow the activations' dtype; ``impl="auto"`` then has no float16 implementation (the FFT
    path is float32/float64, the reference float32/float64/bfloat16), so float16 autocast raises
    :class:`~attnzoo.NotSupportedError`, and bfloat16 runs the dense O(N²) reference.
    """

    def __init__(self, dim: int, num_heads: int, max_len: int = 1024, num_features: int | None = None,
                 seed: int = 0, is_causal: bool = False, qkv_bias: bool = True, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        check_int("max_len", max_len)
        check_int("seed", seed, 0)
        for name, flag in (("is_causal", is_causal), ("qkv_bias", qkv_bias)):
            check_flag(name, flag)
        self.dim, self.num_heads, self.head_dim, self.max_len = dim, num_heads, head_dim, max_len
        self.is_causal, self.impl = is_causal, impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rpe = nn.Parameter(torch.zeros(num_heads, 2 * max_len - 1))
        m = check_optional_int("num_features", num_features) or default_num_features(head_dim)
        self.register_buffer("projection", random_projection(self.head_dim, m, seed))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (True = padding)."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        if x.shape[1] > self.max_len:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected (B, N, C) with N <= "
                             f"max_len={self.max_len}")
        n = x.shape[1]
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        rpe = self.rpe[:, self.max_len - n: self.max_len + n - 1]
        out = kernelized_rpe_attention(q, k, v, autocast_like(rpe, q), projection=self.projection.to(q.dtype),
                                       is_causal=self.is_causal, impl=self.impl, key_padding_mask=key_padding_mask)
        return self.proj(merge_heads(out))
