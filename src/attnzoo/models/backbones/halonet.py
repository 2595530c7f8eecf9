"""HaloNet (Vaswani et al. 2021, arXiv 2103.12731) scaled down to 28x28 Fashion-MNIST.

Kept from the paper (there is no official code; timm's ``timm/models/byoanet.py`` HaloNets and ``halo_attn.py``,
read): a convolutional stem, then ResNet-style bottleneck stages in which the 3x3 convolution of every bottleneck
is replaced by blocked local self-attention with halos (``halo_attention``, no qkv bias, the factorised
relative-position tables, padded keys masked): ``ReLU(x' + BN(Conv1x1(ReLU(BN(halo(ReLU(BN(Conv1x1(x)))))))))``
with the last BN's weight 0 at init, bottleneck ratio 1/4, heads of 16 channels, the shortcut a strided 1x1
Conv-BN where the shape changes; downsampling by attention in the first block of a stage (strided queries when
the block size is even, else a 2x2 average pool after the attention, as timm's ``HaloAttn``); global average
pool and a linear head.

Scaled: the stem is one 3x3 stride-2 Conv-BN-ReLU (HaloNet: a ResNet stem, stride 4); two stages at 14x14 and
7x7 (HaloNet: four, c2 to c5) of output widths ``(256, 512)`` (H0: 256 ... 2048) and depths ``(2, 3)``; block
7 with halo 2 at 14x14 (HaloNet: block 8, halo 3) and block 7 without halo at 7x7, where one block covers the
grid (HaloNet's last stage, 7x7 under block 8, likewise). About 0.75 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.models.backbones.common import ImageClassifier, downsampled, mixer, positive_ints, stage_lists
from attnzoo.models.registry import register_model
from attnzoo.registry import get_variant
from attnzoo.validation import check_int


def conv_bn(in_dim: int, out_dim: int, kernel_size: int = 1, stride: int = 1, zero_init: bool = False
            ) -> nn.Sequential:
    """A bias-free ``Conv2d`` and ``BatchNorm2d`` (weight 0 if ``zero_init``: a residual branch starting at 0)."""
    bn = nn.BatchNorm2d(out_dim)
    if zero_init:
        nn.init.zeros_(bn.weight)
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, kernel_size, stride, kernel_size // 2, bias=False), bn)


class HaloBottleneck(nn.Module):
    """A bottleneck whose 3x3 convolution is halo attention (timm's ``SelfAttnBlock`` with ``HaloAttn``), on
    ``(B, C, H, W)``; ``stride`` 2 downsamples by the attention and the shortcut."""

    def __init__(self, in_dim: int, out_dim: int, head_dim: int, block_size: int, halo_size: int,
                 stride: int) -> None:
        super().__init__()
        mid = out_dim // 4
        if mid % head_dim:
            raise ValueError(f"out_dim={out_dim}: the bottleneck width out_dim / 4 = {mid} must be a multiple of "
                             f"head_dim={head_dim}")
        strided = stride > 1 and block_size % stride == 0
        self.conv1 = nn.Sequential(conv_bn(in_dim, mid), nn.ReLU())
        self.attn = mixer("halo_attention", channels_first=True, dim=mid, num_heads=mid // head_dim,
                          block_size=block_size, halo_size=halo_size, stride=stride if strided else 1,
                          qkv_bias=False, mask_padding=True)
        self.pool = nn.AvgPool2d(2, 2) if stride > 1 and not strided else nn.Identity()
        self.post_attn = nn.Sequential(nn.BatchNorm2d(mid), nn.ReLU())
        self.conv3 = conv_bn(mid, out_dim, zero_init=True)
        self.shortcut = (conv_bn(in_dim, out_dim, stride=stride) if stride > 1 or in_dim != out_dim
                         else nn.Identity())
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.post_attn(self.pool(self.attn(self.conv1(x)))))
        return self.act(out + self.shortcut(x))


@register_model("halonet", paper=get_variant("halo_attention").paper, mixers=("halo_attention",))
class HaloNet(ImageClassifier):
    """HaloNet: a convolutional stem and bottleneck stages with halo attention in place of the 3x3 convolutions,
    scaled to 28x28 (see the module docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        stem_dim: the stem's width.
        dims, depths, block_sizes, halo_sizes: per stage, the output width (the attention runs at a quarter of
            it), the bottlenecks, the attention's block and halo (each block size must divide its stage's grid).
        head_dim: channels per attention head.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 stem_dim: int = 64, dims: Sequence[int] = (256, 512), depths: Sequence[int] = (2, 3),
                 block_sizes: Sequence[int] = (7, 7), halo_sizes: Sequence[int] = (2, 0), head_dim: int = 16) -> None:
        stages = stage_lists(dims=dims, depths=depths, block_sizes=block_sizes, halo_sizes=halo_sizes)
        super().__init__(in_channels, num_classes, image_size, stride=2 ** stages)
        dims, depths = positive_ints("dims", dims), positive_ints("depths", depths)
        block_sizes, halo_sizes = positive_ints("block_sizes", block_sizes), positive_ints("halo_sizes", halo_sizes, 0)
        for i in range(stages):  # stage i attends on its input grid (its first block) and its output grid
            grids = {tuple(downsampled(side, i + 1 - first) for side in self.image_size) for first in (0, i > 0)}
            if i > 0 and any(side % 2 for side in max(grids)):
                raise ValueError(f"image_size={image_size!r}: stage {i} halves a {max(grids)} grid; expected even "
                                 "sides there (the attention's pooling and the strided shortcut must agree)")
            for grid in sorted(grids):
                if any(side % block_sizes[i] for side in grid):
                    raise ValueError(f"block_sizes[{i}]={block_sizes[i]}: stage {i} attends on a {grid[0]}x{grid[1]} "
                                     "grid (the stem and each later stage halve the image); expected a divisor of "
                                     "both sides")
        self.stem = nn.Sequential(conv_bn(in_channels, check_int("stem_dim", stem_dim), 3, stride=2), nn.ReLU())
        self.stages = nn.Sequential()
        widths = (stem_dim, *dims)
        for i in range(stages):
            self.stages.append(nn.Sequential(*(
                HaloBottleneck(widths[i] if j == 0 else dims[i], dims[i], check_int("head_dim", head_dim),
                               block_sizes[i], halo_sizes[i], stride=2 if i > 0 and j == 0 else 1)
                for j in range(depths[i]))))
        self.head = nn.Linear(dims[-1], num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(images)).mean(dim=(2, 3)))
