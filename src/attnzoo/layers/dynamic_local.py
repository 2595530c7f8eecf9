"""DLGSANet's multi-head dynamic local self-attention, MHDLSA (arXiv 2301.02031), transcribed from the official
``IDynamicDWConvBlock`` and ``IDynamicDWConv`` (``NeonLeexiang/DLGSANet``, ``basicsr/archs/dlgsanet_arch.py`` and
``dlgsanet_idynamicdwconv_util.py``), with the official parameter names, so that an official block's
``state_dict`` loads as it is (``tests/test_dynamic_local.py`` compares them on copied weights).

``num_heads`` is the official ``heads`` (``idynamic_num_heads``, passed to ``IDynamicDWConv`` as
``group_channels``): the number of consecutive channels that share one predicted kernel, so each pixel gets
``dim / num_heads`` kernels (the official CUDA kernel's ``g = c / (channels / groups)``). With the official
``dim = 48`` and ``heads = 6`` that is 8 kernels of 6 channels each.
"""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.dynamic_local.functional import check_kernel_size, dynamic_local_attention_2d
from attnzoo.validation import check_flag

REDUCTION = 4
"""The hypernetwork's channel reduction (the official ``reduction_ratio = 4``)."""


class DynamicDepthwiseConv(ShowsOptions, nn.Module):
    """The official ``IDynamicDWConv`` on channels-first ``(B, C, H, W)``: a hypernetwork predicts, per pixel,
    ``C / group_channels`` kernels of ``k x k`` (``conv1``: 1x1 conv ``C -> C/4``, then a depthwise ``k x k``
    conv; ``conv2``: 1x1 conv ``C/4 -> k² C / group_channels``; biases with ``bias``), and channel ``c`` is filtered
    with kernel ``c // group_channels`` of its pixel (:func:`attnzoo.ops.dynamic_local_attention_2d`)."""

    def __init__(self, channels: int, kernel_size: int, group_channels: int, bias: bool = True,
                 impl: str = "auto") -> None:
        super().__init__()
        check_heads(channels, group_channels)
        check_kernel_size(kernel_size)
        check_flag("bias", bias)
        if channels < REDUCTION:
            raise ValueError(f"dim={channels!r}: expected at least {REDUCTION} channels (the kernel hypernetwork has "
                             f"dim // {REDUCTION} channels)")
        self.channels, self.kernel_size, self.group_channels, self.impl = channels, kernel_size, group_channels, impl
        self.groups = channels // group_channels
        hidden = channels // REDUCTION
        self.conv1 = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=bias),
                                   nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden,
                                             bias=bias))
        self.conv2 = nn.Sequential(nn.Conv2d(hidden, kernel_size ** 2 * self.groups, 1, bias=bias))

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted kernels of ``(B, C, H, W)`` input: ``(B, G, H, W, k²)``."""
        b, _, h, w = x.shape
        return self.conv2(self.conv1(x)).view(b, self.groups, self.kernel_size ** 2, h, w).permute(0, 1, 3, 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        b, c, h, w = x.shape
        groups = x.view(b, self.groups, self.group_channels, h, w).permute(0, 1, 3, 4, 2)  # (B, G, H, W, D)
        out = dynamic_local_attention_2d(groups, self.kernels(x), self.kernel_size, impl=self.impl)
        return out.permute(0, 1, 4, 2, 3).reshape(b, c, h, w)


class DynamicLocalAttention(ShowsOptions, nn.Module):
    """MHDLSA, the official ``IDynamicDWConvBlock`` (``dynamic=True``) as a spatial mixer ``(B, H, W, C) ->
    (B, H, W, C)``: 1x1 conv ``conv0`` (no bias), :class:`DynamicDepthwiseConv` ``conv`` (kernel ``kernel_size``,
    the official ``window_size = 7``, ``num_heads`` channels per kernel), 1x1 conv ``conv1`` (no bias). The
    official block's pre-norm and residual live outside it (``IDynamicLayerBlock``), as a model's block around
    any mixer. Works on any grid (kernels wider than the grid see zero padding). Time O(H W C (C + k² / 4)).
    """

    def __init__(self, dim: int, num_heads: int, kernel_size: int = 7, bias: bool = True,
                 impl: str = "auto") -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.dim, self.num_heads, self.kernel_size = dim, num_heads, kernel_size
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv = DynamicDepthwiseConv(dim, kernel_size, num_heads, bias, impl)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        return self.conv1(self.conv(self.conv0(x.permute(0, 3, 1, 2)))).permute(0, 2, 3, 1)
