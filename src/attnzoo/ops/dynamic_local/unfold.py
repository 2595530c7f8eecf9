"""MHDLSA's dynamic depthwise filtering through ``F.unfold``: the fast path.

``F.unfold`` (im2col, zero padding ``(k - 1) / 2``) gives every pixel's ``k x k`` window of every channel,
``(B·G, D·k², N)``; the output is the window weighted by the pixel's own kernel, summed over the ``k²`` offsets:
one broadcast product and reduction (``torch.einsum``). Autograd differentiates both (``unfold``'s backward is
``fold``, col2im). What the official CuPy kernel computes, one thread per output element, as batched tensor ops:
time O(N k² D), memory O(N k² D) for the windows (``k²`` copies of the value).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dynamic_local_unfold(value: torch.Tensor, weights: torch.Tensor, *, kernel_size: int) -> torch.Tensor:
    """``(B, G, X, Y, D)`` value, ``(B, G, X, Y, k²)`` weights -> ``(B, G, X, Y, D)``."""
    b, g, x, y, d = value.shape
    windows = F.unfold(value.permute(0, 1, 4, 2, 3).reshape(b * g, d, x, y), kernel_size,
                       padding=(kernel_size - 1) // 2)  # (B·G, D·k², X·Y), channel-major then offset
    windows = windows.view(b, g, d, kernel_size ** 2, x, y)
    return torch.einsum("bgdoxy,bgxyo->bgxyd", windows, weights)
