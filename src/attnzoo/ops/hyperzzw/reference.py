"""The oracle of HyperZ·Z·W's context-dependent convolution: an explicit sum over the kernel's taps."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hyperzzw_reference(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``out[b, c, i, j] = Σ_{u, v} K[b, c, u, v] · x_pad[b, c, i + u, j + v]`` (zero padding ``(k − 1) / 2``);
    O(k² · C · H · W) time per sample."""
    b, c, h, w = x.shape
    k = kernel.shape[-1]
    pad = (k - 1) // 2
    padded = F.pad(x, (pad, pad, pad, pad))
    out = torch.zeros_like(x)
    for u in range(k):
        for v in range(k):
            out = out + kernel[:, :, u, v, None, None] * padded[:, :, u:u + h, v:v + w]
    return out
