"""What every backbone of :mod:`attnzoo.models.backbones` shares: the image-classifier base class (input checks,
grey ``(B, H, W)`` images), the stride check of the image size, a channels-first LayerNorm, the transformer MLP
and the per-stage argument checks. Not attention: the mixers come from the registry (``attnzoo.create``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.registry import create
from attnzoo.validation import check_int, per_axis


def stage_lists(**lists: Sequence[Any]) -> int:
    """The common length of the per-stage argument ``lists`` (``dims=..., depths=...``); ``ValueError`` naming
    them if they differ or are empty."""
    lengths = {name: len(value) for name, value in lists.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"per-stage arguments must have one entry per stage, at least one: got lengths {lengths}")
    return next(iter(lengths.values()))


def positive_ints(name: str, values: Sequence[int], minimum: int = 1) -> tuple[int, ...]:
    """``values`` as a tuple of ints ``>= minimum`` (``name[i]`` in the error)."""
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(values))


def downsampled(size: int, times: int) -> int:
    """``size`` after ``times`` stride-2 steps that keep ``ceil`` (padding odd sizes): 28 -> 14 -> 7 -> 4."""
    for _ in range(times):
        size = -(-size // 2)
    return size


class ImageClassifier(nn.Module):
    """Base of the backbones: checks the images and reshapes grey ``(B, H, W)`` ones; subclasses define
    :meth:`logits` on ``(B, in_channels, H, W)``.

    Args:
        in_channels: image channels.
        num_classes: classes.
        image_size: ``H`` and ``W`` the model is built for (an int or ``(H, W)``); every forward must match.
        stride: the model's total downsampling; ``ValueError`` naming ``image_size`` if an image side is smaller
            (a grid the stages cannot reduce further).
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int | Sequence[int], stride: int) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.num_classes = check_int("num_classes", num_classes)
        self.image_size: tuple[int, int] = per_axis(image_size, 2, "image_size")  # type: ignore[assignment]
        if min(self.image_size) < stride:
            raise ValueError(f"image_size={image_size!r}: {type(self).__name__} downsamples by {stride} in total "
                             f"(stem and stages), so expected images of at least {stride}x{stride}")

    def stage_grids(self, stages: int) -> list[tuple[int, int]]:
        """The token grid of each of ``stages`` stages behind a stride-2 stem, each later stage halving it again
        (:func:`downsampled`): ``[(14, 14), (7, 7), (4, 4)]`` for 28x28 images and 3 stages."""
        return [tuple(downsampled(side, i + 1) for side in self.image_size) for i in range(stages)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: float ``(B, in_channels, H, W)`` (or ``(B, H, W)`` if ``in_channels == 1``) with ``(H, W)``
        the model's ``image_size`` -> logits ``(B, num_classes)``."""
        expected = [(self.in_channels, *self.image_size)] + ([self.image_size] if self.in_channels == 1 else [])
        if tuple(images.shape[1:]) not in expected or images.dim() not in (3, 4):
            gray = f" or (B, {self.image_size[0]}, {self.image_size[1]})" if self.in_channels == 1 else ""
            raise ValueError(f"images has shape {tuple(images.shape)}; {type(self).__name__} expects (B, "
                             f"{self.in_channels}, {self.image_size[0]}, {self.image_size[1]}){gray}")
        if not images.is_floating_point():
            raise TypeError(f"images.dtype={images.dtype}; expected a floating dtype (scale the pixels first)")
        return self.logits(images.reshape(len(images), self.in_channels, *self.image_size))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of ``(B, C, H, W)`` (timm's ``LayerNorm2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """The transformer MLP ``fc2(GELU(fc1(x)))`` on channels-last input (timm's ``Mlp``: same parameter names)."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mlp_ratio={mlp_ratio!r}: gives int(dim * mlp_ratio) = {hidden} hidden units for "
                             f"dim={dim}; expected at least 1")
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PreNormBlock(nn.Module):
    """The pre-norm transformer block ``x + attn(LN(x))``, ``x + mlp(LN(x))`` on channels-last input (timm's
    ``Block`` names: ``norm1``, ``attn``, ``norm2``, ``mlp``; ``eps`` the LayerNorms')."""

    def __init__(self, dim: int, attn: nn.Module, mlp: nn.Module, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), attn
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def mixer(name: str, **options: Any) -> nn.Module:
    """The layer of registry variant ``name`` (``attnzoo.create``), every option the backbone relies on given
    explicitly (the registry's ``layer_defaults`` are test sizes, not a backbone's)."""
    return create(name, **options)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W, C)``."""
    return x.permute(0, 2, 3, 1)


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, C, H, W)``."""
    return x.permute(0, 3, 1, 2)
