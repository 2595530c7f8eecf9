"""DaViT (Ding et al. 2022, arXiv 2204.03645) scaled down to 28x28 Fashion-MNIST.

Kept from the paper (timm's ``timm/models/davit.py``, adapted from the official dingmyu/davit): a convolutional
stem with LayerNorm; stages that each begin (after the first) with a LayerNorm + 2x2 stride-2 convolution
(odd grids padded bottom / right first); in every stage ``depths[i]`` *dual* units, a spatial block then a channel
block, each ``x = CPE(x); x = x + attn(LN(x)); x = CPE(x); x = x + MLP(LN(x))`` with ``CPE`` the residual
depthwise 3x3 convolution position encoding; spatial attention = window attention in non-overlapping windows
without shift or position bias (``window_attention_2d``), channel attention = channel group attention with one
group per head (``channel_group_attention``); MLP ratio 4; global average pool, LayerNorm, linear head. The
parameter names are timm's (``stem``, ``stages.i.downsample``, ``stages.i.blocks.j.0/1`` with ``cpe1``,
``norm1``, ``attn.qkv``, ``attn.proj``, ``cpe2``, ``norm2``, ``mlp.fc1/fc2``), so a timm block's weights load
(``tests/test_backbones_timm.py`` compares both blocks, a stage and the whole model, timm's ``DaVit`` class with
its stem swapped for this one, with timm 1.0.31 on copied weights; at 56x56, since at 28x28 the last 4x4 grid is one
4x4 window here while timm pads it to 7x7 and attends to the unmasked zero padding).

Scaled: the stem is a 3x3 stride-2 convolution (DaViT: 7x7 stride 4), so a 28x28 image gives stages at 14x14,
7x7 and 4x4; three stages (DaViT-T: four) of widths ``(48, 96, 192)`` (96 ... 768), depths ``(1, 1, 2)``
((1, 1, 3, 1)), 16 channels per head / group as DaViT-T (32) halved; the window is 7 as in the paper,
clipped to the stage's grid (4 at 4x4: one window, as the paper's last stage at 7x7). About 2.2 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.models.backbones.common import (
    ImageClassifier,
    LayerNorm2d,
    Mlp,
    channels_first,
    channels_last,
    mixer,
    positive_ints,
    stage_lists,
)
from attnzoo.models.registry import register_model
from attnzoo.registry import get_variant
from attnzoo.validation import check_int


class ConvPosEnc(nn.Module):
    """DaViT's convolutional position encoding: ``x + DWConv3x3(x)`` on ``(B, C, H, W)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(x)


class DaViTBlock(nn.Module):
    """DaViT's ``SpatialBlock`` / ``ChannelBlock`` (the same layout around a different attention) on
    ``(B, C, H, W)``: ``x = CPE(x); x = x + attn(LN(x)); x = CPE(x); x = x + MLP(LN(x))``."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float) -> None:
        super().__init__()
        self.cpe1, self.norm1, self.attn = ConvPosEnc(dim), nn.LayerNorm(dim), attn
        self.cpe2, self.norm2, self.mlp = ConvPosEnc(dim), nn.LayerNorm(dim), Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channels_last(self.cpe1(x))
        x = x + self.attn(self.norm1(x))
        x = channels_last(self.cpe2(channels_first(x)))
        return channels_first(x + self.mlp(self.norm2(x)))


class Downsample(nn.Module):
    """DaViT's downsampling: ``LayerNorm2d`` then a 2x2 stride-2 convolution, odd grids zero-padded at the
    bottom / right first (as timm)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm, self.conv = LayerNorm2d(in_dim), nn.Conv2d(in_dim, out_dim, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.conv(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2)))


class DaViTStage(nn.Module):
    """One stage: the optional downsampling, then ``depth`` (spatial block, channel block) pairs."""

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, window: tuple[int, int],
                 mlp_ratio: float, downsample: bool) -> None:
        super().__init__()
        self.downsample = Downsample(in_dim, dim) if downsample else nn.Identity()

        def pair() -> nn.Sequential:
            spatial = mixer("window_attention_2d", dim=dim, num_heads=num_heads, window_size=window, shift_size=0,
                            rel_pos_bias=False, qkv_bias=True)
            channel = mixer("channel_group_attention", dim=dim, num_heads=num_heads, window_size=None, qkv_bias=True)
            return nn.Sequential(DaViTBlock(dim, spatial, mlp_ratio), DaViTBlock(dim, channel, mlp_ratio))

        self.blocks = nn.Sequential(*(pair() for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


@register_model("davit", paper=get_variant("channel_group_attention").paper,
                mixers=("window_attention_2d", "channel_group_attention"))
class DaViT(ImageClassifier):
    """DaViT: dual (window, channel-group) attention stages, scaled to 28x28 (see the module docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        dims, depths, num_heads: per stage, the width, the number of (spatial, channel) pairs and the heads
            (= channel groups; must divide the width).
        window_size: the spatial attention's window side, clipped to each stage's grid.
        mlp_ratio: MLP hidden width / width.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 dims: Sequence[int] = (48, 96, 192), depths: Sequence[int] = (1, 1, 2),
                 num_heads: Sequence[int] = (3, 6, 12), window_size: int = 7, mlp_ratio: float = 4.0) -> None:
        stages = stage_lists(dims=dims, depths=depths, num_heads=num_heads)
        super().__init__(in_channels, num_classes, image_size, stride=2 ** stages)
        dims, depths, heads = positive_ints("dims", dims), positive_ints("depths", depths), positive_ints(
            "num_heads", num_heads)
        window_size = check_int("window_size", window_size)
        self.stem = nn.Sequential()
        self.stem.add_module("conv", nn.Conv2d(in_channels, dims[0], 3, stride=2, padding=1))
        self.stem.add_module("norm", LayerNorm2d(dims[0]))
        self.stages = nn.Sequential()
        for i, grid in enumerate(self.stage_grids(stages)):
            window = tuple(min(window_size, side) for side in grid)
            self.stages.append(DaViTStage(dims[max(i - 1, 0)], dims[i], depths[i], heads[i], window, mlp_ratio,
                                          downsample=i > 0))
        self.norm, self.head = nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(images)).mean(dim=(2, 3))
        return self.head(self.norm(features))
