"""ULSAM's oracle: the official code's per-subspace loop (``Nandan91/ULSAM`` ``ulsam.py``, ``SubSpace``), each
step written out: the depthwise 1x1 convolution as a per-channel affine map, BatchNorm by its formula, the 3x3
max pool as the maximum of nine shifted copies, the pointwise convolution as a channel sum, the softmax over the
positions by its definition."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.feature_maps import batch_norm_reference


def max_pool_3x3(h: torch.Tensor) -> torch.Tensor:
    """``max`` over each pixel's 3x3 neighbourhood (stride 1; outside the map counts as ``-inf``)."""
    height, width = h.shape[-2:]
    padded = F.pad(h, (1, 1, 1, 1), value=float("-inf"))
    shifted = [padded[..., i:i + height, j:j + width] for i in range(3) for j in range(3)]
    return torch.stack(shifted).amax(dim=0)


def ulsam_reference(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor, dw_norm_weight: torch.Tensor,
                    dw_norm_bias: torch.Tensor, dw_running_mean: torch.Tensor, dw_running_var: torch.Tensor,
                    pw_weight: torch.Tensor, pw_bias: torch.Tensor, pw_norm_weight: torch.Tensor,
                    pw_norm_bias: torch.Tensor, pw_running_mean: torch.Tensor, pw_running_var: torch.Tensor,
                    training: bool, momentum: float, eps: float) -> torch.Tensor:
    """One subspace ``n`` of ``g`` at a time (channels ``nG .. (n+1)G - 1``, ``G = C / g``)::

        h = ReLU(BN(dw_weight ⊙ F_n + dw_bias));   h = maxpool3x3(h)
        a = ReLU(BN(sum_c pw_weight[n, c] h_c + pw_bias[n]));   A_n = exp(a) / sum_HW exp(a)
        out_n = A_n ⊙ F_n + F_n
    """
    groups, size = pw_weight.shape
    outs = []
    for n in range(groups):
        part = slice(n * size, (n + 1) * size)
        f = x[:, part]
        h = f * dw_weight[part, None, None] + dw_bias[part, None, None]
        h = torch.relu(batch_norm_reference(h, dw_norm_weight[part], dw_norm_bias[part], dw_running_mean[part],
                                            dw_running_var[part], training, momentum, eps))
        h = max_pool_3x3(h)
        a = torch.einsum("bchw,c->bhw", h, pw_weight[n])[:, None] + pw_bias[n]
        point = slice(n, n + 1)
        a = torch.relu(batch_norm_reference(a, pw_norm_weight[point], pw_norm_bias[point], pw_running_mean[point],
                                            pw_running_var[point], training, momentum, eps))
        e = (a - a.amax(dim=(2, 3), keepdim=True)).exp()
        attention = e / e.sum(dim=(2, 3), keepdim=True)  # (B, 1, H, W): sums to 1 over the positions
        outs.append(attention * f + f)
    return torch.cat(outs, dim=1)
