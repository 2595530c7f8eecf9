"""A MEDUSA attention head through ``F.interpolate`` and ``F.conv2d`` (the official code's ``tf.image.resize``
and ``Conv2D(padding="same")``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def medusa_conv(x: torch.Tensor, saliency: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
    """``x + x ⊙ (W ∗ resize(S) + b)`` with one bilinear resize and one convolution."""
    resized = F.interpolate(saliency, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)
    attention = F.conv2d(resized, weight, bias, padding=weight.shape[-1] // 2)
    return torch.addcmul(x, x, attention)
