"""LKA, the large kernel attention of the Visual Attention Network (arXiv 2202.09741), and VAN's spatial attention
block around it: ``(B, C, H, W)`` modules."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import check_odd_int
from attnzoo.ops.lka.functional import large_kernel_attention
from attnzoo.validation import check_int


def van_conv_init(conv: nn.Conv2d) -> None:
    """VAN's init of every ``Conv2d`` (``_init_weights`` of ``models/van.py``): weight ``N(0, 2 / fan_out)`` with
    ``fan_out = kh · kw · C_out / groups``, bias zero."""
    fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class LargeKernelAttention(ShowsOptions, nn.Module):
    """``(B, C, H, W) -> (B, C, H, W)``: ``x ⊙ conv1(conv_spatial(conv0(x)))``
    (:func:`~attnzoo.ops.lka.functional.large_kernel_attention`).

    ``conv0``: depthwise ``kernel_size`` x ``kernel_size`` (5); ``conv_spatial``: depthwise ``dilated_kernel_size``
    (7) with ``dilation`` (3); ``conv1``: pointwise; all with bias, named as the official ``AttentionModule``
    (its state dict loads as it is) and initialised as VAN does (:func:`van_conv_init`). Receptive field
    ``kernel_size + (dilated_kernel_size - 1) · dilation`` (23) pixels per side.

    >>> import torch
    >>> layer = LargeKernelAttention(32)
    >>> layer(torch.randn(2, 32, 14, 14)).shape
    torch.Size([2, 32, 14, 14])
    >>> layer.receptive_field
    23
    """

    def __init__(self, dim: int, kernel_size: int = 5, dilated_kernel_size: int = 7, dilation: int = 3,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        check_odd_int("kernel_size", kernel_size)
        check_odd_int("dilated_kernel_size", dilated_kernel_size)
        self.dilation = check_int("dilation", dilation)
        self.conv0 = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, dilated_kernel_size, padding=dilation * (dilated_kernel_size // 2),
                                      groups=dim, dilation=dilation)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        for conv in (self.conv0, self.conv_spatial, self.conv1):
            van_conv_init(conv)
        self.receptive_field = kernel_size + (dilated_kernel_size - 1) * dilation
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, C, H, W)", channels_first=True)
        w0, b0, w1, b1, w2, b2 = (autocast_like(t, x) for t in (
            self.conv0.weight, self.conv0.bias, self.conv_spatial.weight, self.conv_spatial.bias, self.conv1.weight,
            self.conv1.bias))
        return large_kernel_attention(x, w0, w1, w2, b0, b1, b2, dilation=self.dilation, impl=self.impl)


class VANSpatialAttention(ShowsOptions, nn.Module):
    """VAN's attention sub-block, ``(B, C, H, W) -> (B, C, H, W)``: ``x + proj_2(LKA(GELU(proj_1(x))))`` with
    pointwise ``proj_1`` / ``proj_2`` (``SpatialAttention`` of the official ``models/van.py``; the state dict
    loads as it is). What a VAN block puts after its first BatchNorm; the LKA options pass through.

    >>> import torch
    >>> VANSpatialAttention(16)(torch.randn(1, 16, 8, 8)).shape
    torch.Size([1, 16, 8, 8])
    """

    def __init__(self, dim: int, kernel_size: int = 5, dilated_kernel_size: int = 7, dilation: int = 3,
                 impl: str = "auto") -> None:
        super().__init__()
        check_int("dim", dim)
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LargeKernelAttention(dim, kernel_size, dilated_kernel_size, dilation, impl)
        self.proj_2 = nn.Conv2d(dim, dim, 1)
        for conv in (self.proj_1, self.proj_2):
            van_conv_init(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))
