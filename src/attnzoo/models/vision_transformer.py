"""A small Vision Transformer (Dosovitskiy et al. 2021, arXiv 2010.11929) whose token mixer is any mixer.

Patches of ``patch_size`` are embedded by a strided ``Conv2d`` into an ``(H/p, W/p)`` token grid plus a
learned position embedding on that grid; ``depth`` pre-norm :class:`~attnzoo.models.block.Block` s; a final
norm; the mean over all tokens (no class token); a linear head. A grid mixer (``(B, H, W, C)``) gets the token
grid as is, a sequence mixer (``(B, N, C)``) the grid flattened row-major, ``"softmax"`` is full bidirectional
attention over the flattened grid. Size options the mixer takes (``resolution``, ``seq_len``, ``l_max``,
``max_len``) are filled from the grid unless ``mixer_kwargs`` passes them
(the variant's ``size_options``); other constraints (a halo ``block_size`` dividing the grid, a
neighbourhood ``kernel_size`` at most the grid) are the layer's own and raise its errors. A mixer with a
``shift_size`` (Swin's shifted windows) alternates as in Swin: even blocks unshifted, odd blocks shifted —
shifting every block alike would keep one window partition, and no information would cross windows.

The defaults (28x28 images, patch 4 -> 7x7 = 49 tokens, width 64, depth 4, MLP ratio 2) are sized for
Fashion-MNIST on a CPU: about 0.14 M parameters with softmax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from attnzoo.models.block import Block
from attnzoo.models.mixers import GRID_LAYOUT, SEQUENCE_LAYOUT, SOFTMAX, mixer_factory
from attnzoo.validation import per_axis


class VisionTransformer(nn.Module):
    """Patch embedding + grid positions -> ``depth`` pre-norm blocks -> norm -> token mean -> linear head.

    Args:
        image_size: image height and width (an int for square images, or ``(H, W)``).
        patch_size: patch height and width; must divide ``image_size`` on each axis.
        in_channels: image channels.
        num_classes: number of classes.
        dim: model width.
        depth: number of blocks.
        mixer: ``"softmax"`` or a registry variant with layout ``(B, N, C)``, ``(B, H, W, C)`` or
            ``(B, X, Y, C)`` (built non-causal: the variant's own defaults, e.g. a causal ``is_causal``
            default, are kept unless ``mixer_kwargs`` overrides them).
        mixer_kwargs: keyword arguments of the mixer layer (``dim`` is the model's).
        mlp_ratio: MLP hidden width / ``dim``; ``0`` drops the MLP.

    Cost per image: the patch embedding ``O(H W C_in C)``, each block ``O(T C²)`` for ``T = HW/p²`` tokens plus
    the mixer's own (``O(T² C)`` for softmax).
    """

    def __init__(self, image_size: int | Sequence[int] = 28, patch_size: int | Sequence[int] = 4,
                 in_channels: int = 1, num_classes: int = 10, dim: int = 64, depth: int = 4,
                 mixer: str = SOFTMAX, mixer_kwargs: Mapping[str, Any] | None = None,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        image = per_axis(image_size, 2, "image_size")
        patch = per_axis(patch_size, 2, "patch_size")
        if any(i % p for i, p in zip(image, patch)):
            raise ValueError(f"patch_size={patch_size!r} does not divide image_size={image_size!r} on every "
                             "axis; expected image_size % patch_size == 0")
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("dim", dim),
                            ("depth", depth)):
            per_axis(value, 1, name)
        self.image_size, self.in_channels = image, in_channels
        self.grid = (image[0] // patch[0], image[1] // patch[1])
        build = mixer_factory(mixer, dim, mixer_kwargs, layouts=(SEQUENCE_LAYOUT, GRID_LAYOUT), causal=False,
                              grid=self.grid)
        self.mixer_name = mixer
        self.flatten_tokens = build.spec.layout.token_axes == 1
        self.patch_embedding = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)
        self.position_embedding = nn.Parameter(torch.empty(1, *self.grid, dim))
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        shifted = "shift_size" in build.options
        unshifted = replace(build, options={**build.options, "shift_size": 0}) if shifted else build
        self.blocks = nn.Sequential(*(Block(dim, (unshifted if i % 2 == 0 else build)(), mlp_ratio)
                                      for i in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: float ``(B, in_channels, H, W)`` (or ``(B, H, W)`` if ``in_channels == 1``) -> logits
        ``(B, num_classes)``; each image's logits depend on that image only (the mixers are per example)."""
        expected = [(self.in_channels, *self.image_size)] + ([self.image_size] if self.in_channels == 1 else [])
        if tuple(images.shape[1:]) not in expected:
            gray = f" or (B, {self.image_size[0]}, {self.image_size[1]})" if self.in_channels == 1 else ""
            raise ValueError(f"images has shape {tuple(images.shape)}; expected (B, {self.in_channels}, "
                             f"{self.image_size[0]}, {self.image_size[1]}){gray}")
        if not images.is_floating_point():
            raise TypeError(f"images.dtype={images.dtype}; expected a floating dtype (scale the pixels first)")
        images = images.reshape(len(images), self.in_channels, *self.image_size)
        x = self.patch_embedding(images).permute(0, 2, 3, 1) + self.position_embedding  # (B, H/p, W/p, C)
        if self.flatten_tokens:
            x = x.flatten(1, 2)  # row-major (B, N, C)
        x = self.norm(self.blocks(x))
        return self.head(x.flatten(1, -2).mean(dim=1))
