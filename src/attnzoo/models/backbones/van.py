"""VAN, the Visual Attention Network (Guo et al. 2022, arXiv 2202.09741), scaled down to 28x28 Fashion-MNIST.

Kept from the paper (official Visual-Attention-Network/VAN-Classification ``models/van.py``): stages that each
begin with an overlapping patch embedding (a strided convolution, ``kernel // 2`` padding, then BatchNorm);
blocks ``x + ls₁ · Attn(BN(x))``, ``x + ls₂ · MLP(BN(x))`` with layer scales initialised to 1e-2, ``Attn`` VAN's
spatial attention ``x + proj₂(LKA(GELU(proj₁(x))))`` (:class:`~attnzoo.layers.VANSpatialAttention` around the
registry's ``large_kernel_attention``: depthwise 5x5, depthwise 7x7 with dilation 3, pointwise, multiplied in)
and the MLP ``fc₂(GELU(DWConv3x3(fc₁(x))))`` (pointwise convolutions); a LayerNorm at the end of every stage;
the token mean and a linear head. VAN-B0's widths, depths and MLP ratios for its first three stages.

Scaled: the first patch embedding keeps its 7x7 kernel but has stride 2 (VAN: 4), so the stages sit at 14x14,
7x7 and 4x4; three stages (VAN-B0: four) of widths ``(32, 64, 160)``, depths ``(3, 3, 5)`` and MLP ratios
``(8, 8, 4)`` (B0's first three). At 14x14 and below the LKA's 23x23 receptive field covers the whole map.
About 2.0 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.lka import VANSpatialAttention
from attnzoo.models.backbones.common import ImageClassifier, positive_ints, stage_lists
from attnzoo.models.registry import register_model
from attnzoo.registry import get_variant

LAYER_SCALE_INIT = 1e-2
"""VAN's layer-scale init."""


class OverlapPatchEmbed(nn.Module):
    """VAN's ``OverlapPatchEmbed``: ``BN(Conv_k,stride s(x))`` with padding ``k // 2`` on ``(B, C, H, W)``."""

    def __init__(self, in_dim: int, dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_dim, dim, kernel_size, stride, kernel_size // 2)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class ConvMlp(nn.Module):
    """VAN's ``Mlp``: ``fc2(GELU(DWConv3x3(fc1(x))))`` with pointwise ``fc1`` / ``fc2`` on ``(B, C, H, W)``."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class VANBlock(nn.Module):
    """VAN's ``Block`` on ``(B, C, H, W)``: ``x + ls₁ · attn(BN(x))``, ``x + ls₂ · mlp(BN(x))``."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = VANSpatialAttention(dim)
        self.norm2, self.mlp = nn.BatchNorm2d(dim), ConvMlp(dim, mlp_ratio)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1[:, None, None] * self.attn(self.norm1(x))
        return x + self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x))


@register_model("van", paper=get_variant("large_kernel_attention").paper, mixers=("large_kernel_attention",))
class VAN(ImageClassifier):
    """VAN: stages of large-kernel-attention blocks, scaled to 28x28 (see the module docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        dims, depths, mlp_ratios: per stage, the width, the blocks and the MLP ratio.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 dims: Sequence[int] = (32, 64, 160), depths: Sequence[int] = (3, 3, 5),
                 mlp_ratios: Sequence[float] = (8.0, 8.0, 4.0)) -> None:
        stages = stage_lists(dims=dims, depths=depths, mlp_ratios=mlp_ratios)
        super().__init__(in_channels, num_classes, image_size, stride=2 ** stages)
        dims, depths = positive_ints("dims", dims), positive_ints("depths", depths)
        self.patch_embeds, self.blocks, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in range(stages):
            self.patch_embeds.append(OverlapPatchEmbed(in_channels if i == 0 else dims[i - 1], dims[i],
                                                       7 if i == 0 else 3, 2))
            self.blocks.append(nn.Sequential(*(VANBlock(dims[i], mlp_ratios[i]) for _ in range(depths[i]))))
            self.norms.append(nn.LayerNorm(dims[i], eps=1e-6))
        self.head = nn.Linear(dims[-1], num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for embed, blocks, norm in zip(self.patch_embeds, self.blocks, self.norms):
            x = norm(blocks(embed(x)).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(x.mean(dim=(2, 3)))
