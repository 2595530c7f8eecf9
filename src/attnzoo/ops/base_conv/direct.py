"""BaseConv's causal depthwise convolution with ``conv1d`` (left padding): O(N · K · C), best for short filters."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.base_conv.common import packed


@packed
def causal_conv_direct(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, N, C)``, ``kernel`` ``(C, K)`` -> ``(B, N, C)``: grouped ``conv1d`` of the flipped filter
    (``conv1d`` is a cross-correlation) over the input padded with ``K - 1`` zeros on the left; ``cu_seqlens``:
    per packed sequence (:func:`~attnzoo.ops.base_conv.common.packed`)."""
    taps = kernel[:, :x.shape[1]]
    padded = F.pad(x.transpose(1, 2), (taps.shape[1] - 1, 0))
    return F.conv1d(padded, taps.flip(-1).unsqueeze(1), groups=x.shape[2]).transpose(1, 2)
