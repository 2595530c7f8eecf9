"""A ResNet-18-style CNN (He et al. 2016, arXiv 1512.03385) for 28x28 Fashion-MNIST, optionally with a CNN
attention module of the registry in every residual block, where the module's paper places it.

Kept from ResNet-18: the basic residual block ``ReLU(x' + BN(Conv3x3(ReLU(BN(Conv3x3(x))))))`` with the shortcut
``x' = BN(Conv1x1, stride 2 (x))`` where the shape changes, four stages of two blocks, widths doubling, stride 2
at the start of stages 2-4, global average pool, linear head. ``attention`` (a registry variant of the ``cnn``
family taking ``(B, C, H, W)`` to the same shape, built by ``attnzoo.create(attention, dim=C, **attention_kwargs)``)
goes after the last BatchNorm of the residual branch, before the addition: where ECA-Net (arXiv 1910.03151, paper
31) puts ECA in its ResNets, as SE-Net puts SE; ``None`` is the plain ResNet the modules are measured against.
Every ``cnn`` variant is also registered as ``resnet18_<variant>`` (e.g. ``resnet18_efficient_channel_attention``),
so ``attnzoo eval fashion-mnist --models resnet18,resnet18_efficient_channel_attention`` measures a module against
the same ResNet without it. The other modules (ULSAM, LKA, ...) take the same place, the one spot of a
residual block a shape-keeping module fits; their papers place them elsewhere (LKA is VAN's token mixer, see
:mod:`~attnzoo.models.backbones.van`), so those rows measure the module, not its paper's network.

Scaled: the stem is one 3x3 stride-2 Conv-BN-ReLU without max-pool (ResNet: 7x7 stride 2 and a stride-2
max-pool), so the stages sit at 14x14, 7x7, 4x4 and 2x2; widths ``(32, 64, 128, 256)`` (ResNet-18: 64 ... 512).
About 2.8 M parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from attnzoo.models.backbones.common import ImageClassifier, mixer, positive_ints, stage_lists
from attnzoo.models.registry import register_model
from attnzoo.registry import Paper, get_variant, variants

RESNET = Paper("Deep Residual Learning for Image Recognition", 2016, "1512.03385", None)


def conv_bn(in_dim: int, out_dim: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """A bias-free ``Conv2d`` (padding ``k // 2``) and ``BatchNorm2d``."""
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, kernel_size, stride, kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_dim))


def cnn_attention(name: str, dim: int, options: Mapping[str, Any]) -> nn.Module:
    """The registry's ``cnn``-family layer ``name`` for ``dim`` channels; ``ValueError`` for another family or
    layout (``KeyError`` from the registry for an unknown name)."""
    variant = get_variant(name)
    if variant.family != "cnn" or not variant.layer_layout.channels_first:
        raise ValueError(f"attention={name!r}: expected a registry variant of the 'cnn' family taking (B, C, H, W) "
                         f"(attnzoo.variants(family='cnn')); {name!r} is of family {variant.family!r} with layout "
                         f"{variant.layer_layout}")
    return mixer(name, dim=dim, **options)


class BasicBlock(nn.Module):
    """ResNet's basic block with ``attention`` after the residual branch's last BatchNorm (see the module
    docstring)."""

    def __init__(self, in_dim: int, dim: int, stride: int, attention: str | None,
                 attention_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.conv1, self.act = conv_bn(in_dim, dim, 3, stride), nn.ReLU()
        self.conv2 = conv_bn(dim, dim, 3)
        self.attention = nn.Identity() if attention is None else cnn_attention(attention, dim, attention_kwargs)
        self.shortcut = conv_bn(in_dim, dim, 1, stride) if stride > 1 or in_dim != dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(self.conv2(self.act(self.conv1(x))))
        return self.act(out + self.shortcut(x))


@register_model("resnet18", paper=RESNET)
class ResNet18(ImageClassifier):
    """A ResNet-18-style CNN with an optional CNN attention module in every block (see the module docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        dims, depths: per stage, the width and the basic blocks.
        attention: a ``cnn``-family registry variant placed after each block's last BatchNorm, or ``None``.
        attention_kwargs: options of that layer (its ``dim`` is the block's width).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 dims: Sequence[int] = (32, 64, 128, 256), depths: Sequence[int] = (2, 2, 2, 2),
                 attention: str | None = None, attention_kwargs: Mapping[str, Any] | None = None) -> None:
        stages = stage_lists(dims=dims, depths=depths)
        super().__init__(in_channels, num_classes, image_size, stride=2 ** stages)
        dims, depths = positive_ints("dims", dims), positive_ints("depths", depths)
        options = dict(attention_kwargs or {})
        if options and attention is None:
            raise ValueError(f"attention_kwargs={options}: given without an attention module (attention=None)")
        self.attention = attention
        self.stem = nn.Sequential(conv_bn(in_channels, dims[0], 3, stride=2), nn.ReLU())
        widths = (dims[0], *dims)
        self.stages = nn.Sequential(*(nn.Sequential(*(
            BasicBlock(widths[i] if j == 0 else dims[i], dims[i], 2 if i > 0 and j == 0 else 1, attention, options)
            for j in range(depths[i]))) for i in range(stages)))
        self.head = nn.Linear(dims[-1], num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(images)).mean(dim=(2, 3)))


BATCH_COUPLED = frozenset({"hyperzzw_conv"})
"""cnn variants left out of the ``resnet18_<variant>`` names: HyperZ·Z·W's layer standardises with batch
statistics in evaluation too (the official ``LocalConv``), so a classifier's prediction for one image would depend
on the rest of its batch. ``ResNet18(attention="hyperzzw_conv")`` still builds, for those who want it."""

for _variant in variants(family="cnn"):
    if _variant.layer is None or _variant.name in BATCH_COUPLED:
        continue  # MEDUSA, SSMA and SDANet take several inputs or a saliency map: no shape-keeping layer
    register_model(f"resnet18_{_variant.name}", paper=_variant.paper, mixers=(_variant.name,),
                   defaults={"attention": _variant.name})(ResNet18)
