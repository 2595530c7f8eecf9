"""Convolution and bilinear resizing written out explicitly, the oracles the CNN modules' references use in place
of ``F.conv2d`` / ``F.interpolate``: a 2-D convolution as the sum over its kernel taps of shifted copies of the
zero-padded input, and bilinear resizing (half-pixel centres, ``align_corners=False``, no antialiasing: what
``F.interpolate(mode="bilinear")`` and TF2's ``tf.image.resize`` compute) as two interpolation matrices."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def conv2d_taps(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, groups: int = 1,
                dilation: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=dilation * (k - 1) // 2, dilation=dilation, groups=groups)`` for an odd
    square kernel ``weight`` ``(Cout, Cin / groups, k, k)``: ``out[o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] ·
    x_pad[g(o)·Cin/groups + c, i + u·d, j + v·d]``, one einsum per tap; O(k² · Cout · Cin / groups · H · W)."""
    b, cin, h, w = x.shape
    cout, per_group, k, _ = weight.shape
    pad = dilation * (k - 1) // 2
    padded = F.pad(x, (pad, pad, pad, pad)).reshape(b, groups, per_group, h + 2 * pad, w + 2 * pad)
    grouped = weight.reshape(groups, cout // groups, per_group, k, k)
    out = x.new_zeros(b, groups, cout // groups, h, w)
    for u in range(k):
        for v in range(k):
            window = padded[..., u * dilation:u * dilation + h, v * dilation:v * dilation + w]
            out = out + torch.einsum("gop,bgphw->bgohw", grouped[..., u, v], window)
    out = out.reshape(b, cout, h, w)
    return out if bias is None else out + bias[:, None, None]


def bilinear_matrix(size_in: int, size_out: int, like: torch.Tensor) -> torch.Tensor:
    """``(size_out, size_in)``: row ``i`` interpolates output pixel ``i`` from the input pixels around its source
    ``(i + ½) · size_in / size_out − ½`` (clamped at 0), PyTorch's ``align_corners=False`` rule."""
    scale = size_in / size_out
    matrix = torch.zeros(size_out, size_in, dtype=like.dtype, device=like.device)
    for i in range(size_out):
        source = max((i + 0.5) * scale - 0.5, 0.0)
        low = int(source)
        high = min(low + 1, size_in - 1)
        weight = source - low
        matrix[i, low] += 1.0 - weight
        matrix[i, high] += weight
    return matrix


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, *size)`` as ``R_H x R_Wᵀ`` with the :func:`bilinear_matrix` of each axis."""
    rows = bilinear_matrix(x.shape[2], size[0], x)
    cols = bilinear_matrix(x.shape[3], size[1], x)
    return torch.einsum("ih,bchw,jw->bcij", rows, x, cols)
