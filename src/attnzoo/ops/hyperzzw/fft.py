"""HyperZ·Z·W's context-dependent convolution by FFT, for the large (up to input-sized) hyper-kernels: the
cross-correlation of the zero-padded input with each sample's depthwise kernel as a product of real 2-D FFTs of
size ``(H + k − 1, W + k − 1)`` (no wrap-around), cropped to the centred ``(H, W)`` window. O(C · (H + k) ·
(W + k) · log) per sample, whatever ``k``."""

from __future__ import annotations

import torch


def hyperzzw_fft(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """As :func:`~attnzoo.ops.hyperzzw.reference.hyperzzw_reference`, up to round-off."""
    h, w = x.shape[-2:]
    k = kernel.shape[-1]
    size = (h + k - 1, w + k - 1)
    flipped = kernel.flip(-2, -1)  # correlation = convolution with the flipped kernel
    full = torch.fft.irfft2(torch.fft.rfft2(x, s=size) * torch.fft.rfft2(flipped, s=size), s=size)
    pad = (k - 1) // 2
    return full[..., k - 1 - pad:k - 1 - pad + h, k - 1 - pad:k - 1 - pad + w]
