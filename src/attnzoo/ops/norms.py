"""BatchNorm for the fast paths of the CNN modules whose op takes a normalisation by the family's convention
(:mod:`attnzoo.ops.feature_maps`: affine weight and bias, running statistics, ``training``): SSMA's fusion and
SDANet's squeeze. The oracle is :func:`attnzoo.ops.feature_maps.batch_norm_reference`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_norm(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
               running_var: torch.Tensor, training: bool, momentum: float, eps: float) -> torch.Tensor:
    """BatchNorm of ``h`` ``(B, C, H, W)``: ``F.batch_norm`` with the batch's statistics (``training=True``,
    updating the running ones in place); with the running statistics as the affine map ``(h - μ) · rsqrt(σ² + eps)
    · weight + bias``, which (unlike ``F.batch_norm``) is differentiable in the statistics too, as every tensor
    input of an op is."""
    if training:
        return F.batch_norm(h, running_mean, running_var, weight, bias, True, momentum, eps)
    scale = weight * (running_var + eps).rsqrt()
    shape = (1, -1, 1, 1)
    return h * scale.view(shape) + (bias - running_mean * scale).view(shape)
