"""The oracle of the SSMA fusion: its three convolutions as explicit sums over their taps, batch norm written out."""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import batch_norm_reference
from attnzoo.ops.taps import conv2d_taps


def ssma_reference(x: torch.Tensor, y: torch.Tensor, reduce_weight: torch.Tensor, reduce_bias: torch.Tensor | None,
                   expand_weight: torch.Tensor, expand_bias: torch.Tensor | None, fuse_weight: torch.Tensor,
                   fuse_bias: torch.Tensor | None, norm: tuple) -> torch.Tensor:
    """``BN(W_f ∗ (X ⊙ σ(W_e ∗ ReLU(W_r ∗ X + b_r) + b_e)) + b_f)`` with ``X = cat(x, y)``; ``norm`` = the batch
    norm's ``(weight, bias, running_mean, running_var, training, momentum, eps)``."""
    both = torch.cat((x, y), dim=1)
    gate = torch.sigmoid(conv2d_taps(torch.relu(conv2d_taps(both, reduce_weight, reduce_bias)), expand_weight,
                                     expand_bias))
    return batch_norm_reference(conv2d_taps(both * gate, fuse_weight, fuse_bias), *norm)
