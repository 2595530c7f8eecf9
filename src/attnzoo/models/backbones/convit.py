"""ConViT (d'Ascoli et al. 2021, arXiv 2103.10697) scaled down to 28x28 Fashion-MNIST.

Kept from the paper (official facebookresearch/convit ``convit.py``, timm's ``timm/models/convit.py``): a
DeiT-style ViT: a strided-convolution patch embedding, a learned absolute position embedding; pre-norm blocks
``x + attn(LN(x))``, ``x + MLP(LN(x))`` (MLP ratio 4); the first ``local_up_to_layer`` blocks use gated
positional self-attention (``gpsa_attention``, with its locality init: ``W_v = I``, heads on a √H x √H grid of
offsets, strength 1, gates σ(1)) on the patch tokens only; the class token is concatenated just before block
``local_up_to_layer``, and the remaining blocks are plain multi-head self-attention (``softmax_attention``,
bidirectional); no qkv bias (ConViT's default); LayerNorms with epsilon 1e-6; a final LayerNorm and a linear head
on the class token.
Parameter names follow timm (``patch_embed.proj``, ``pos_embed``, ``cls_token``, ``blocks.i.norm1/attn/norm2/
mlp.fc1/fc2``, ``norm``, ``head``); ``tests/test_backbones_timm.py`` compares a GPSA block, an MHSA block and the whole
model (timm's ``ConVit`` class at this 28x28 configuration: equal logits and input gradients) with timm 1.0.31 on
copied weights.

Scaled: patch 4 on 28x28 gives a 7x7 grid (ConViT: patch 16 on 224, 14x14); width 128 with 4 heads (ConViT-Ti:
192 = 48 · 4 heads) and depth 6 with 4 GPSA blocks (ConViT: 12 and 10). About 1.2 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.models.backbones.common import ImageClassifier, Mlp, PreNormBlock, mixer
from attnzoo.models.registry import register_model
from attnzoo.registry import get_variant
from attnzoo.validation import check_int

LAYER_NORM_EPS = 1e-6
"""The official ConViT's (and timm's) LayerNorm epsilon."""


class PatchEmbed(nn.Module):
    """Patches of ``patch_size`` by a strided convolution: ``(B, C_in, H, W)`` -> ``(B, H/p, W/p, C)``."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


@register_model("convit", paper=get_variant("gpsa_attention").paper, mixers=("gpsa_attention", "softmax_attention"))
class ConViT(ImageClassifier):
    """ConViT: GPSA blocks on the patch grid, then class-token MHSA blocks, scaled to 28x28 (see the module
    docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        patch_size: patch side; must divide ``image_size``.
        dim, depth, num_heads: width, blocks and heads (a perfect square for the locality init).
        local_up_to_layer: the number of leading GPSA blocks (``0 <= local_up_to_layer < depth``).
        mlp_ratio: MLP hidden width / width.
        locality_strength: GPSA's locality init strength ``α``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 patch_size: int = 4, dim: int = 128, depth: int = 6, num_heads: int = 4,
                 local_up_to_layer: int = 4, mlp_ratio: float = 4.0, locality_strength: float = 1.0) -> None:
        super().__init__(in_channels, num_classes, image_size, stride=check_int("patch_size", patch_size))
        if any(side % patch_size for side in self.image_size):
            raise ValueError(f"patch_size={patch_size}: expected a divisor of image_size={self.image_size} on both "
                             "axes")
        self.local_up_to_layer = check_int("local_up_to_layer", local_up_to_layer, 0)
        if local_up_to_layer >= check_int("depth", depth):
            raise ValueError(f"local_up_to_layer={local_up_to_layer}: expected less than depth={depth} (the class "
                             "token joins at block local_up_to_layer; the head reads it)")
        grid = tuple(side // patch_size for side in self.image_size)
        self.patch_embed = PatchEmbed(in_channels, dim, patch_size)
        self.pos_embed = nn.Parameter(torch.empty(1, *grid, dim))
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        for parameter in (self.pos_embed, self.cls_token):
            nn.init.trunc_normal_(parameter, std=0.02)

        def attention(i: int) -> nn.Module:
            if i < local_up_to_layer:
                return mixer("gpsa_attention", dim=dim, num_heads=num_heads, qkv_bias=False,
                             locality_strength=locality_strength, use_local_init=True)
            return mixer("softmax_attention", dim=dim, num_heads=num_heads, is_causal=False, qkv_bias=False)

        self.blocks = nn.ModuleList(PreNormBlock(dim, attention(i), Mlp(dim, mlp_ratio), eps=LAYER_NORM_EPS)
                                    for i in range(depth))
        self.norm, self.head = nn.LayerNorm(dim, eps=LAYER_NORM_EPS), nn.Linear(dim, num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images) + self.pos_embed  # (B, H/p, W/p, C): the grid GPSA takes
        for i, block in enumerate(self.blocks):
            if i == self.local_up_to_layer:
                x = torch.cat([self.cls_token.expand(len(x), -1, -1), x.flatten(1, 2)], dim=1)
            x = block(x)
        return self.head(self.norm(x)[:, 0])
