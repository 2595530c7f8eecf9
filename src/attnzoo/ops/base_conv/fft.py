"""BaseConv's causal depthwise convolution by real FFT: O(N log N · C), any filter length (Zoology's long conv)."""

from __future__ import annotations

import torch

from attnzoo.ops.base_conv.common import causal_fft_conv, packed


@packed
def causal_conv_fft(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, N, C)``, ``kernel`` ``(C, K)`` -> ``(B, N, C)``; zero-padded to a fast size >= N + K - 1; ``cu_seqlens``:
    per packed sequence (:func:`~attnzoo.ops.base_conv.common.packed`)."""
    return causal_fft_conv(x, kernel.t())
