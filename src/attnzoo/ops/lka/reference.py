"""LKA's oracle: each depthwise convolution as the sum over its taps of shifted copies of the zero-padded map
(one multiply-add per tap, the definition), the 1x1 convolution as a channel sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def depthwise_conv_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                             dilation: int) -> torch.Tensor:
    """``y[b, c, i, j] = bias[c] + sum_{u, v} weight[c, 0, u, v] · x[b, c, i + d(u - ru), j + d(v - rv)]`` with
    zeros outside the map (``r = (k - 1) / 2``): a same-size depthwise convolution of odd kernel ``(kh, kw)``."""
    _, _, height, width = x.shape
    kh, kw = weight.shape[-2:]
    ph, pw = dilation * (kh - 1) // 2, dilation * (kw - 1) // 2
    padded = F.pad(x, (pw, pw, ph, ph))
    out = torch.zeros_like(x)
    for u in range(kh):
        for v in range(kw):
            window = padded[:, :, u * dilation:u * dilation + height, v * dilation:v * dilation + width]
            out = out + weight[:, 0, u, v, None, None] * window
    return out if bias is None else out + bias[:, None, None]


def lka_reference(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor | None,
                  dilated_weight: torch.Tensor, dilated_bias: torch.Tensor | None, pw_weight: torch.Tensor,
                  pw_bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    """``x ⊙ PW(DW_dilated(DW(x)))``: the two depthwise convolutions tap by tap, then the pointwise one as
    ``sum_c pw_weight[o, c] · a[c]``."""
    attn = depthwise_conv_reference(x, dw_weight, dw_bias, 1)
    attn = depthwise_conv_reference(attn, dilated_weight, dilated_bias, dilation)
    attn = torch.einsum("bchw,oc->bohw", attn, pw_weight[:, :, 0, 0])
    if pw_bias is not None:
        attn = attn + pw_bias[:, None, None]
    return x * attn
