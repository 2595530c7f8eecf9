"""MSA-Conv, the oracle: ``torch.nn.functional.unfold`` (im2col) of keys and values, the window centres'
queries, an explicit masked softmax over each window's ``k²`` keys; O(X' Y' k² (D + Dv)) time and memory."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.msa_conv.windows import ConvWindows


def _unfold(x: torch.Tensor, windows: ConvWindows) -> torch.Tensor:
    """``(B, H, X, Y, D)`` -> ``(B·H, D, k², L)``: each window's ``k²`` pixels, zero in the padding."""
    b, h, nx, ny, d = x.shape
    columns = F.unfold(x.reshape(b * h, nx, ny, d).permute(0, 3, 1, 2), windows.kernel_size,
                       dilation=windows.dilation, padding=windows.padding, stride=windows.stride)
    return columns.unflatten(1, (d, -1))


def msa_conv_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, windows: ConvWindows,
                       masked: bool, scale: float) -> torch.Tensor:
    """``(B, H, X, Y, D)`` -> ``(B, H, X', Y', Dv)``; padding keys hidden when ``masked``, else attended as zero
    keys and values."""
    b, h, _, _, d = query.shape
    cx, cy = (windows.centres(axis).to(query.device) for axis in (0, 1))
    centre = query[:, :, cx][:, :, :, cy].reshape(b * h, -1, d).transpose(1, 2)  # (B·H, D, L)
    scores = (centre[:, :, None, :] * _unfold(key, windows)).sum(1) * scale  # (B·H, k², L)
    if masked:
        ones = query.new_ones(1, 1, *windows.grid, 1)
        inside = _unfold(ones, windows)[:, 0] > 0  # (1, k², L)
        scores = scores.masked_fill(~inside, float("-inf"))
    probs = torch.softmax(scores, dim=1)
    out = (probs[:, None] * _unfold(value, windows)).sum(2)  # (B·H, Dv, L)
    return out.transpose(1, 2).reshape(b, h, *windows.out_shape, value.shape[-1])
