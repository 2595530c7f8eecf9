"""Neighborhood attention layers (NAT / DiNAT style): qkv projection, heads, relative position bias, output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.neighborhood.functional import _neighborhood_attention
from attnzoo.validation import check_flag, check_scale, per_axis, per_axis_flags


class NeighborhoodAttention(ShowsOptions, nn.Module):
    """n-D neighborhood attention mixer on channels-last input ``(B, *grid, C)``.

    ``C = dim`` is split into ``num_heads`` heads; ``kernel_size``, ``dilation`` and ``is_causal`` are per axis
    (or one value). ``rel_pos_bias`` adds the learnable ``(heads, 2k - 1, ...)`` table (NAT/DiNAT, truncated
    normal init, std 0.02). ``impl`` is passed to the op.
    """

    spatial_dims: int = 0

    def __init__(self, dim: int, num_heads: int, kernel_size: int | Sequence[int], dilation: int | Sequence[int] = 1,
                 is_causal: bool | Sequence[bool] = False, rel_pos_bias: bool = True, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, check_heads(dim, num_heads)
        self.kernel_size = per_axis(kernel_size, self.spatial_dims, "kernel_size")
        per_axis(dilation, self.spatial_dims, "dilation")
        per_axis_flags(is_causal, self.spatial_dims, "is_causal")
        self.dilation, self.is_causal = dilation, is_causal
        for name, flag in (("rel_pos_bias", rel_pos_bias), ("qkv_bias", qkv_bias)):
            check_flag(name, flag)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rpb = None
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.empty(num_heads, *(2 * k - 1 for k in self.kernel_size)))
            nn.init.trunc_normal_(self.rpb, std=0.02, a=-2.0, b=2.0)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, *grid, C)`` -> same; ``key_padding_mask`` ``(B, N)`` over the row-major flattened grid
        (True = padding, :mod:`attnzoo.ops.dropin`)."""
        check_layer_input(self, x, rank=self.spatial_dims + 2, dim=self.dim, layout="(B, *grid, C)")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        out = _neighborhood_attention(self.spatial_dims, q, k, v, self.kernel_size, self.dilation,
                                      self.is_causal, autocast_like(self.rpb, q), self.scale, self.impl,
                                      key_padding_mask=key_padding_mask)
        return self.proj(merge_heads(out))


class NeighborhoodAttention1D(NeighborhoodAttention):
    """1-D neighborhood attention layer: ``(B, N, C) -> (B, N, C)``."""

    spatial_dims = 1


class NeighborhoodAttention2D(NeighborhoodAttention):
    """2-D neighborhood attention layer: ``(B, H, W, C) -> (B, H, W, C)``."""

    spatial_dims = 2


class NeighborhoodAttention3D(NeighborhoodAttention):
    """3-D neighborhood attention layer: ``(B, X, Y, Z, C) -> (B, X, Y, Z, C)``."""

    spatial_dims = 3
