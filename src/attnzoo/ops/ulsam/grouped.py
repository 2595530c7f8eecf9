"""ULSAM with every subspace at once: the depthwise 1x1 convolution and its BatchNorm over all ``C`` channels,
one ``max_pool2d``, the ``g`` pointwise convolutions as one grouped ``conv2d`` (``groups = g``), the softmax of
the ``(B, g, H·W)`` maps, and the gating broadcast over each subspace's ``G`` channels. The same arithmetic as the
per-subspace loop (each BatchNorm channel is independent), without its ``g`` passes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.feature_maps import batch_norm


def ulsam_grouped(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor, dw_norm_weight: torch.Tensor,
                  dw_norm_bias: torch.Tensor, dw_running_mean: torch.Tensor, dw_running_var: torch.Tensor,
                  pw_weight: torch.Tensor, pw_bias: torch.Tensor, pw_norm_weight: torch.Tensor,
                  pw_norm_bias: torch.Tensor, pw_running_mean: torch.Tensor, pw_running_var: torch.Tensor,
                  training: bool, momentum: float, eps: float) -> torch.Tensor:
    b, c, height, width = x.shape
    groups, size = pw_weight.shape
    h = x * dw_weight[:, None, None] + dw_bias[:, None, None]
    h = torch.relu(batch_norm(h, dw_norm_weight, dw_norm_bias, dw_running_mean, dw_running_var, training, momentum,
                              eps))
    h = F.max_pool2d(h, 3, stride=1, padding=1)
    a = F.conv2d(h, pw_weight[:, :, None, None], pw_bias, groups=groups)  # (B, g, H, W)
    a = torch.relu(batch_norm(a, pw_norm_weight, pw_norm_bias, pw_running_mean, pw_running_var, training, momentum,
                              eps))
    attention = a.flatten(2).softmax(dim=-1).view(b, groups, 1, height, width)
    return (x.reshape(b, groups, size, height, width) * (1 + attention)).reshape(b, c, height, width)
