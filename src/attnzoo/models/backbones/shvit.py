"""SHViT (Yun & Ro 2024, arXiv 2401.16456) scaled down to 28x28 Fashion-MNIST.

Kept from the paper (official ysj9909/SHViT ``model/shvit.py``): a convolutional patchify stem (3x3 Conv-BN with
ReLU between); three stages of ``BasicBlock`` s, each ``x + DWConv3x3-BN(x)`` (BN weight 0 at init), then
``x + SHSA(x)`` in the ``"s"`` stages (single-head attention over the whole grid on a partial set of channels,
``shvit_single_head_attention`` with ``qk_dim`` 16 and its output BN at 0), then ``x + FFN(x)`` (1x1 Conv-BN
``C -> 2C``, ReLU, 1x1 Conv-BN ``2C -> C`` with BN weight 0); stage types ``("i", "s", "s")`` (the first stage
without attention, as every SHViT config); between stages the downsampler ``Residual(DWConv-BN) +
Residual(FFN)``, ``PatchMerging`` (1x1 ``C -> 4C``, ReLU, depthwise 3x3 stride 2, ReLU, squeeze-excitation
0.25, 1x1 ``4C -> C'``), ``Residual(DWConv-BN) + Residual(FFN)`` at the new width; global average pool, a
BatchNorm1d + linear head. BatchNorm everywhere (no LayerNorm), as the paper's memory-efficient design.

Scaled: the stem has two convolutions, only the first strided (SHViT: four, stride 16), so the stages sit at
14x14, 7x7 and 4x4, the grids SHViT's stages have at 224x224 (14, 7, 4 after rounding up); widths
``(64, 128, 224)`` (SHViT-S4: 224, 336, 448), depths ``(2, 3, 3)`` ((4, 7, 6)), attended channels
``round(C / 4.67)``: 27 and 48 (S4: 48, 72, 96 = C / 4.67). About 1.9 M parameters.

Checked against timm 1.0.31's ``SHViT`` class (``tests/test_backbones_timm.py``) with its stride-16 stem swapped
for this one: equal logits and input gradients on copied weights, in training and eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.single_head import PAPER_PARTIAL_RATIO
from attnzoo.models.backbones.common import ImageClassifier, mixer, positive_ints, stage_lists
from attnzoo.models.registry import register_model
from attnzoo.registry import get_variant

STAGE_TYPES = ("i", "s")
"""``"i"``: a block without attention; ``"s"``: with single-head attention."""


class ConvBN(nn.Sequential):
    """The official ``Conv2d_BN``: a bias-free ``Conv2d`` then ``BatchNorm2d`` (weight ``bn_weight_init``, bias 0)."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_dim, out_dim, kernel_size, stride, kernel_size // 2, groups=groups,
                                       bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_dim))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)


class Residual(nn.Module):
    """``x + m(x)``."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class FFN(nn.Module):
    """The official ``FFN``: ``ConvBN(2C -> C, BN weight 0)(ReLU(ConvBN(C -> 2C)(x)))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pw1, self.act, self.pw2 = ConvBN(dim, 2 * dim), nn.ReLU(), ConvBN(2 * dim, dim, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


class SqueezeExcite(nn.Module):
    """timm's ``SqueezeExcite`` (rd ratio 0.25, rounded to a multiple of 8): ``x · σ(W₂ ReLU(W₁ GAP(x)))``."""

    def __init__(self, dim: int, rd_ratio: float = 0.25) -> None:
        super().__init__()
        reduced = max(8, int(dim * rd_ratio + 4) // 8 * 8)
        reduced += 8 if reduced < 0.9 * dim * rd_ratio else 0
        self.conv_reduce, self.act = nn.Conv2d(dim, reduced, 1), nn.ReLU()
        self.conv_expand = nn.Conv2d(reduced, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv_expand(self.act(self.conv_reduce(x.mean((2, 3), keepdim=True)))))


class PatchMerging(nn.Module):
    """The official ``PatchMerging``: 1x1 ``C -> 4C``, ReLU, depthwise 3x3 stride 2, ReLU, SE, 1x1 ``4C -> C'``."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        hidden = 4 * dim
        self.conv1, self.act = ConvBN(dim, hidden), nn.ReLU()
        self.conv2 = ConvBN(hidden, hidden, 3, stride=2, groups=hidden)
        self.se, self.conv3 = SqueezeExcite(hidden), ConvBN(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))


def conv_ffn(dim: int) -> nn.Sequential:
    """The downsampler's ``Residual(DWConv3x3-BN) + Residual(FFN)``."""
    return nn.Sequential(Residual(ConvBN(dim, dim, 3, groups=dim)), Residual(FFN(dim)))


class BasicBlock(nn.Module):
    """The official ``BasicBlock``: ``Residual(DWConv3x3-BN, weight 0)``, ``Residual(SHSA)`` (type ``"s"``) or
    nothing (``"i"``), ``Residual(FFN)``."""

    def __init__(self, dim: int, qk_dim: int, partial_dim: int, block_type: str) -> None:
        super().__init__()
        self.conv = Residual(ConvBN(dim, dim, 3, groups=dim, bn_weight_init=0.0))
        self.mixer: nn.Module = nn.Identity()
        if block_type == "s":
            self.mixer = Residual(mixer("shvit_single_head_attention", channels_first=True, dim=dim,
                                        partial_ratio=partial_dim / dim, qk_dim=qk_dim, proj_norm_init=0.0))
        self.ffn = Residual(FFN(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mixer(self.conv(x)))


@register_model("shvit", paper=get_variant("shvit_single_head_attention").paper,
                mixers=("shvit_single_head_attention",))
class SHViT(ImageClassifier):
    """SHViT: a convolutional stem and BN-only stages with single-head partial-channel attention, scaled to 28x28
    (see the module docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        dims, depths, types: per stage, the width, the blocks and the block type (``"i"`` or ``"s"``).
        partial_dims: per stage, the channels single-head attention attends (``None``: ``round(C / 4.67)``).
        qk_dim: query / key width of the single head.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 dims: Sequence[int] = (64, 128, 224), depths: Sequence[int] = (2, 3, 3),
                 types: Sequence[str] = ("i", "s", "s"), partial_dims: Sequence[int] | None = None,
                 qk_dim: int = 16) -> None:
        partial_dims = [round(d * PAPER_PARTIAL_RATIO) for d in dims] if partial_dims is None else partial_dims
        stages = stage_lists(dims=dims, depths=depths, types=types, partial_dims=partial_dims)
        super().__init__(in_channels, num_classes, image_size, stride=2 ** stages)
        dims, depths = positive_ints("dims", dims), positive_ints("depths", depths)
        partial_dims = positive_ints("partial_dims", partial_dims)
        bad = [(i, t) for i, t in enumerate(types) if t not in STAGE_TYPES]
        if bad:
            raise ValueError(f"types={tuple(types)!r}: expected each of {STAGE_TYPES}, got {bad} (index, type)")
        over = [(i, p, d) for i, (p, d) in enumerate(zip(partial_dims, dims)) if p > d]
        if over:
            raise ValueError(f"partial_dims={tuple(partial_dims)}: expected at most the stage width, got {over} "
                             "(index, partial dim, width)")
        if dims[0] % 2:
            raise ValueError(f"dims[0]={dims[0]}: the stem's first convolution has dims[0] / 2 channels; expected an "
                             "even width")
        self.patch_embed = nn.Sequential(ConvBN(in_channels, dims[0] // 2, 3, stride=2), nn.ReLU(),
                                         ConvBN(dims[0] // 2, dims[0], 3))
        self.stages = nn.Sequential()
        for i in range(stages):
            stage = nn.Sequential()
            if i > 0:
                stage.extend([conv_ffn(dims[i - 1]), PatchMerging(dims[i - 1], dims[i]), conv_ffn(dims[i])])
            stage.extend(BasicBlock(dims[i], qk_dim, partial_dims[i], types[i]) for _ in range(depths[i]))
            self.stages.append(stage)
        self.head = nn.Sequential(nn.BatchNorm1d(dims[-1]), nn.Linear(dims[-1], num_classes))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.patch_embed(images)).mean(dim=(2, 3)))
