"""GC ViT (Hatamizadeh et al. 2023, arXiv 2206.09959) scaled down to 28x28 Fashion-MNIST.

Kept from the paper (official NVlabs/GCVit ``models/gc_vit.py``, timm's ``timm/models/gcvit.py``): a
convolutional stem; stages that each begin (after the first) with the ``ReduceSize`` downsampler (LayerNorm2d,
the fused-MBConv ``FeatExtract`` with squeeze-excitation, a bias-free 3x3 stride-2 convolution doubling the width,
LayerNorm2d); in every stage, blocks alternating local window attention (even index: ``window_attention_2d``
with its relative position bias, its own ``qkv``) and global query attention (odd index:
``global_query_attention``'s global block, ``kv`` only, the queries from the global query generator); the global
queries computed once per stage from the stage input by one generator (``FeatExtract`` + max-pool steps down to
one window) shared by the stage's global blocks; pre-norm blocks ``x + attn(LN(x))``, ``x + MLP(LN(x))``, MLP
ratio 3 (GC ViT-XXT); a LayerNorm after the last stage, global average pool, linear head.

Scaled: the stem is one 3x3 stride-2 convolution (GC ViT: that convolution and a ``ReduceSize``, stride 4), so
stages sit at 14x14, 7x7 and 4x4 (GC ViT: 56, 28, 14, 7); three stages (four) of widths ``(64, 128, 256)``
(GC ViT-XXT: 64 ... 512), depths ``(2, 2, 2)`` ((2, 2, 6, 2)), heads ``(2, 4, 8)`` (the XXT's first three, 32
channels each); window 7 clipped to the stage grid (7, 7, 4), so the generator pools once at 14x14 and not at
all after (the paper: 3, 2, 1, 0 poolings). About 2.2 M parameters.

Checked (``tests/test_backbones_timm.py``) against timm 1.0.31 on copied weights: a whole stage, and the whole
model, timm's ``GlobalContextVit`` with its stride-4 stem swapped for this stride-2 one (at 56x56, widths from 32:
timm's squeeze-excitation rounds its hidden width up to a multiple of 8, the official code does not).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.global_query import FeatExtract
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


class ReduceSize(nn.Module):
    """GC ViT's downsampler on ``(B, C, H, W)``: LayerNorm2d, ``FeatExtract`` (no pooling), bias-free 3x3
    stride-2 convolution to ``out_dim``, LayerNorm2d (timm's ``Downsample2d``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv_block = LayerNorm2d(in_dim), FeatExtract(in_dim, keep_dim=True)
        self.reduction = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1, bias=False)
        self.norm2 = LayerNorm2d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.reduction(self.conv_block(self.norm1(x))))


class GCViTBlock(nn.Module):
    """A pre-norm GC ViT block on ``(B, H, W, C)``: ``x + attn(LN(x))`` (local window attention, or the global
    block of a :class:`~attnzoo.layers.GlobalQueryAttention` with the stage's global queries), then
    ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float, use_global: bool) -> None:
        super().__init__()
        self.norm1, self.attn, self.use_global = nn.LayerNorm(dim), attn, use_global
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, q_global: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + (self.attn.global_attention(h, q_global) if self.use_global else self.attn(h))
        return x + self.mlp(self.norm2(x))


class GCViTStage(nn.Module):
    """One stage on ``(B, C, H, W)``: the optional :class:`ReduceSize`, the global queries of the stage input,
    ``depth`` blocks alternating local and global attention."""

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, grid: tuple[int, int],
                 window: tuple[int, int], mlp_ratio: float, downsample: bool) -> None:
        super().__init__()
        self.downsample = ReduceSize(in_dim, dim) if downsample else nn.Identity()
        blocks, generator = [], None
        for i in range(depth):
            if i % 2 == 0:
                attn = mixer("window_attention_2d", dim=dim, num_heads=num_heads, window_size=window, shift_size=0,
                             rel_pos_bias=True, qkv_bias=True)
            else:
                attn = mixer("global_query_attention", dim=dim, num_heads=num_heads, resolution=grid,
                             window_size=window, local_block=False, rel_pos_bias=True, qkv_bias=True)
                if generator is None:
                    generator = attn.generator
                else:
                    attn.generator = generator  # one generator per stage, shared as in GC ViT
            blocks.append(GCViTBlock(dim, attn, mlp_ratio, use_global=i % 2 == 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channels_last(self.downsample(x))
        q_global = self.blocks[1].attn.global_queries(x) if len(self.blocks) > 1 else None  # the shared generator
        for block in self.blocks:
            x = block(x, q_global)
        return channels_first(x)


@register_model("gcvit", paper=get_variant("global_query_attention").paper,
                mixers=("window_attention_2d", "global_query_attention"))
class GCViT(ImageClassifier):
    """GC ViT: stages of alternating local window and global query attention, scaled to 28x28 (see the module
    docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        dims, depths, num_heads: per stage, the width, the blocks (local and global alternating, local first)
            and the heads.
        window_size: the window side, clipped to each stage's grid; each stage's grid must be the window times a
            power of two (GC ViT's global query generator halves the grid down to one window).
        mlp_ratio: MLP hidden width / width.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 dims: Sequence[int] = (64, 128, 256), depths: Sequence[int] = (2, 2, 2),
                 num_heads: Sequence[int] = (2, 4, 8), window_size: int = 7, mlp_ratio: float = 3.0) -> None:
        stages = stage_lists(dims=dims, depths=depths, num_heads=num_heads)
        super().__init__(in_channels, num_classes, image_size, stride=2 ** stages)
        dims, depths, heads = positive_ints("dims", dims), positive_ints("depths", depths), positive_ints(
            "num_heads", num_heads)
        window_size = check_int("window_size", window_size)
        self.stem = nn.Conv2d(in_channels, dims[0], 3, stride=2, padding=1)
        self.stages = nn.Sequential()
        for i, grid in enumerate(self.stage_grids(stages)):
            window = tuple(min(window_size, side) for side in grid)
            self.stages.append(GCViTStage(dims[max(i - 1, 0)], dims[i], depths[i], heads[i], grid, window,
                                          mlp_ratio, downsample=i > 0))
        self.norm, self.head = nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        features = channels_last(self.stages(self.stem(images)))
        return self.head(self.norm(features).mean(dim=(1, 2)))
