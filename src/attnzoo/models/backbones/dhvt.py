"""DHVT (Lu et al. 2022, arXiv 2210.05958) scaled down to 28x28 Fashion-MNIST.

Kept from the paper (official ArieSeirack/DHVT ``vision_transformer.py``): the sequential overlapping patch
embedding SOPE (a per-channel affine ``x · α + β`` of the input, 3x3 stride-2 convolutions + BatchNorm with GELU
between them, ``C_in -> D/2 -> D`` for patch 4, an affine of the embedding; no absolute position embedding);
a class token; pre-norm blocks ``x + HI-MHSA(LN(x))`` (head-interaction attention with one head token per head,
``dhvt_head_token_attention`` with ``class_token=True``: the head tokens' mean added to the class token) and
``x + DAFF(LN(x))`` (the dynamic aggregation feed-forward network, :class:`~attnzoo.layers.DynamicAggregationFFN`:
1x1 conv + BN + GELU, residual depthwise 3x3 + BN + GELU, 1x1 conv + BN on the patch grid, the squeeze-excitation
of the class token); no qkv bias (the official default); MLP ratio 4; a final LayerNorm and a linear head on the
class token.

Scaled: patch 4 on 28x28 gives 7x7 patch tokens (DHVT on CIFAR: patch 4 on 32x32, 8x8); width 128 with 4 heads
(DHVT-T: 192, 4 heads) and depth 6 (12). About 1.4 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.dynamic_aggregation_ffn import DynamicAggregationFFN
from attnzoo.models.backbones.common import ImageClassifier, PreNormBlock, mixer
from attnzoo.models.registry import register_model
from attnzoo.registry import get_variant
from attnzoo.validation import check_int

SOPE_PATCHES = (2, 4, 16)
"""The patch sizes the official SOPE has stacks for (one 3x3 stride-2 convolution per halving)."""


class Affine(nn.Module):
    """The official ``Affine``: ``x · α + β`` per channel of ``(B, C, H, W)`` (``α = 1``, ``β = 0`` at init)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha + self.beta


class SOPE(nn.Module):
    """DHVT's sequential overlapping patch embedding: ``(B, C_in, H, W)`` -> ``(B, H/p · W/p, D)`` (see the module
    docstring); the widths double up to ``D`` (``D/8, D/4, D/2, D`` at patch 16)."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        if patch_size not in SOPE_PATCHES:
            raise ValueError(f"patch_size={patch_size!r}: DHVT's SOPE has convolution stacks for patch sizes "
                             f"{SOPE_PATCHES}")
        steps = patch_size.bit_length() - 1
        widths = [in_channels] + [dim // 2 ** (steps - 1 - i) for i in range(steps)]
        layers: list[nn.Module] = []
        for i in range(steps):
            layers += [nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1),
                                     nn.BatchNorm2d(widths[i + 1])), nn.GELU()]
        self.pre_affine = Affine(in_channels)
        self.proj = nn.Sequential(*(layers if steps == 1 else layers[:-1]))  # GELU between, and after a single one
        self.post_affine = Affine(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_affine(self.proj(self.pre_affine(x))).flatten(2).transpose(1, 2)


@register_model("dhvt", paper=get_variant("dhvt_head_token_attention").paper, mixers=("dhvt_head_token_attention",))
class DHVT(ImageClassifier):
    """DHVT: SOPE, then blocks of head-token attention and DAFF around a class token, scaled to 28x28 (see the
    module docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        patch_size: 2, 4 or 16 (SOPE's stacks); must divide ``image_size``.
        dim, depth, num_heads: width, blocks and heads.
        mlp_ratio: DAFF hidden width / width.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 patch_size: int = 4, dim: int = 128, depth: int = 6, num_heads: int = 4,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__(in_channels, num_classes, image_size, stride=check_int("patch_size", patch_size))
        if any(side % patch_size for side in self.image_size):
            raise ValueError(f"patch_size={patch_size}: expected a divisor of image_size={self.image_size} on both "
                             "axes")
        if self.image_size[0] != self.image_size[1]:
            raise ValueError(f"image_size={image_size!r}: DAFF lays the patch tokens out on a square grid; expected "
                             "square images")
        if check_int("dim", dim) % max(1, patch_size // 2):
            raise ValueError(f"dim={dim}: SOPE's widths halve back from dim once per stride-2 step; expected a "
                             f"multiple of {patch_size // 2} for patch_size={patch_size}")
        self.patch_embed = SOPE(in_channels, dim, patch_size)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.Sequential(*(
            PreNormBlock(dim, mixer("dhvt_head_token_attention", dim=dim, num_heads=num_heads, qkv_bias=False,
                                    class_token=True),
                         DynamicAggregationFFN(dim, mlp_ratio=mlp_ratio, kernel_size=3, class_token=True))
            for _ in range(check_int("depth", depth))))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(images)
        x = self.blocks(torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1))
        return self.head(self.norm(x)[:, 0])
