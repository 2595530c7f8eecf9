"""BaseConv's causal depthwise convolution, the oracle: the direct sum over taps, O(N · K · C)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.dropin import sequence_ids


def causal_conv_reference(x: torch.Tensor, kernel: torch.Tensor,
                          cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
    """``y[b, t, c] = sum_{s=0}^{min(K, N)-1} kernel[c, s] * x[b, t - s, c]`` (zero before the start).

    ``x`` ``(B, N, C)``, ``kernel`` ``(C, K)``; one shifted multiply-add per tap, written as the definition.
    With ``cu_seqlens`` (batch 1), tap ``s`` reaches ``t`` only when ``t - s`` lies in ``t``'s packed sequence.
    """
    n = x.shape[1]
    out = torch.zeros_like(x)
    seq = None if cu_seqlens is None else sequence_ids(cu_seqlens, n, x.device)
    for s in range(min(kernel.shape[1], n)):
        shifted = F.pad(x[:, :n - s], (0, 0, s, 0))  # shifted[:, t] = x[:, t - s], zero for t < s
        term = shifted * kernel[:, s]
        if seq is not None:
            same = F.pad(seq[s:] == seq[:n - s], (s, 0))  # same[t]: t - s lies in t's sequence
            term = torch.where(same[:, None], term, 0)
        out = out + term
    return out
