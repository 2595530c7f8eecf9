"""ULSAM with every subspace at once: the depthwise 1x1 convolution and its BatchNorm over all ``C`` channels,
one ``max_pool2d`` (on a channels-last copy), the ``g`` pointwise convolutions as one batched product
(``einsum``; a grouped ``conv2d`` to ``g`` channels takes a slow oneDNN path on CPU), the softmax of the
``(B, g, H·W)`` maps, and the gating broadcast over each subspace's ``G`` channels. With the running statistics
(``training=False``) each BatchNorm is folded into the convolution before it (one per-channel affine map for the
depthwise step, scaled pointwise weights): two passes over the map fewer. The same function as the per-subspace
loop (each BatchNorm channel is independent), without its ``g`` passes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _fold(weight: torch.Tensor, bias: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor,
          mean: torch.Tensor, var: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``BN(w · h + b)`` with running statistics as ``w' · h + b'``: ``s = γ / sqrt(σ² + eps)``, ``w' = s w``
    (``s`` along ``weight``'s first dim), ``b' = s (b - μ) + β``."""
    scale = norm_weight * (var + eps).rsqrt()
    return weight * scale.view(-1, *([1] * (weight.dim() - 1))), (bias - mean) * scale + norm_bias


def ulsam_grouped(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor, dw_norm_weight: torch.Tensor,
                  dw_norm_bias: torch.Tensor, dw_running_mean: torch.Tensor, dw_running_var: torch.Tensor,
                  pw_weight: torch.Tensor, pw_bias: torch.Tensor, pw_norm_weight: torch.Tensor,
                  pw_norm_bias: torch.Tensor, pw_running_mean: torch.Tensor, pw_running_var: torch.Tensor,
                  training: bool, momentum: float, eps: float) -> torch.Tensor:
    b, c, height, width = x.shape
    groups, size = pw_weight.shape
    if training:
        h = x * dw_weight[:, None, None] + dw_bias[:, None, None]
        h = F.batch_norm(h, dw_running_mean, dw_running_var, dw_norm_weight, dw_norm_bias, True, momentum, eps)
    else:
        scale, shift = _fold(dw_weight, dw_bias, dw_norm_weight, dw_norm_bias, dw_running_mean, dw_running_var, eps)
        h = torch.addcmul(shift[:, None, None], x, scale[:, None, None])
    # channels last: PyTorch's CPU max pool is several times faster there (1 thread, 64 x 56 x 56: 0.5 / 1.6 ms
    # forward / forward + backward against 6.4 / 8.5 ms on the (B, C, H, W)-contiguous map)
    h = F.max_pool2d(torch.relu(h).contiguous(memory_format=torch.channels_last), 3, stride=1, padding=1)
    h = h.contiguous().view(b, groups, size, height, width)
    if training:
        # contiguous: einsum returns a (g, b)-major permutation, on which torch 2.13's traced BatchNorm backward
        # (AOT autograd) predicts other strides than the eager kernel returns, and the compiled backward fails
        a = torch.einsum("bgchw,gc->bghw", h, pw_weight).contiguous() + pw_bias[:, None, None]
        a = F.batch_norm(a, pw_running_mean, pw_running_var, pw_norm_weight, pw_norm_bias, True, momentum, eps)
    else:
        weight, shift = _fold(pw_weight, pw_bias, pw_norm_weight, pw_norm_bias, pw_running_mean, pw_running_var, eps)
        a = torch.einsum("bgchw,gc->bghw", h, weight) + shift[:, None, None]
    attention = torch.relu(a).flatten(2).softmax(dim=-1).view(b, groups, 1, height, width)
    return (x.reshape(b, groups, size, height, width) * (1 + attention)).reshape(b, c, height, width)
