"""HaloNet attention layer (arXiv 2103.12731), following timm's ``HaloAttn``: q / kv projections, shared 2-D
position tables."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.halo.functional import halo_attention
from attnzoo.validation import check_flag, check_int


class HaloAttention(ShowsOptions, nn.Module):
    """Blocked local self-attention with halos on channels-last input ``(B, H, W, C)`` -> ``(B, H/s, W/s, C)``.

    As timm's ``HaloAttn`` (``dim_out = dim``, ``qk_ratio = 1``, ``scale_pos_embed=False``, strided-query
    downsampling): ``q = x[:, ::s, ::s] W_q`` (timm's strided 1x1 conv), ``[k, v] = x W_kv``, heads of
    ``dim / num_heads`` channels, position tables ``(2w - 1, head_dim)`` shared across heads, initialised like
    timm (truncated normal, std ``head_dim ** -0.5``; projections std ``dim ** -0.5``). No output projection:
    in HaloNet the layer replaces a 3x3 convolution inside a bottleneck block. ``H`` and ``W`` must be
    divisible by ``block_size``, and ``block_size`` by ``stride``.
    """

    def __init__(self, dim: int, num_heads: int, block_size: int = 8, halo_size: int = 3, stride: int = 1,
                 qkv_bias: bool = False, mask_padding: bool = True, impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, check_heads(dim, num_heads)
        check_int("block_size", block_size)
        check_int("halo_size", halo_size, 0)
        check_int("stride", stride)
        for name, flag in (("qkv_bias", qkv_bias), ("mask_padding", mask_padding)):
            check_flag(name, flag)
        if block_size % stride:
            raise ValueError(f"stride={stride}: must divide block_size={block_size} (strided queries per block)")
        self.block_size, self.halo_size, self.stride = block_size, halo_size, stride
        self.mask_padding, self.impl = mask_padding, impl
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        rows = 2 * (block_size + 2 * halo_size) - 1
        self.rel_h = nn.Parameter(torch.empty(rows, self.head_dim))
        self.rel_w = nn.Parameter(torch.empty(rows, self.head_dim))
        for weight in (self.q.weight, self.kv.weight):
            nn.init.trunc_normal_(weight, std=dim ** -0.5)
        for table in (self.rel_h, self.rel_w):
            nn.init.trunc_normal_(table, std=self.head_dim ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        s = self.stride
        q = split_heads(self.q(x[:, ::s, ::s]), self.num_heads)
        k, v = split_heads(self.kv(x), self.num_heads).chunk(2, dim=-1)
        out = halo_attention(q, k, v, self.block_size, self.halo_size, rel_h=autocast_like(self.rel_h, q), rel_w=autocast_like(self.rel_w, q),
                             mask_padding=self.mask_padding, stride=s, impl=self.impl)
        return merge_heads(out)
