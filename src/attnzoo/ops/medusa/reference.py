"""The oracle of a MEDUSA attention head: the saliency map resized by explicit interpolation matrices, the
head's convolution as an explicit sum over its taps, then ``x + x ⊙ A``."""

from __future__ import annotations

import torch

from attnzoo.ops.taps import conv2d_taps, resize_bilinear


def medusa_reference(x: torch.Tensor, saliency: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None) -> torch.Tensor:
    """``x + x ⊙ (W ∗ resize(S) + b)``; O(k² · C · Cs · H · W)."""
    attention = conv2d_taps(resize_bilinear(saliency, tuple(x.shape[2:])), weight, bias)
    return x + x * attention
