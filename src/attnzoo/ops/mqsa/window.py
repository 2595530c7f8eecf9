"""The long-range query of MQSA (Zhu et al., WSDM 2024; official code
``zhuty16/MQSA-TED`` ``MQSA_TED.py``, block ``block_long_query``): the causal mean of the last ``window`` item
representations, counting only items that are not padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_window_mean(x: torch.Tensor, window: int, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``out[..., t, :] = sum_{l < window, t - l >= 0, valid} x[..., t - l, :] / #valid`` (zero where no item
    of the window is valid).

    ``x`` ``(B, H, N, D)``; ``key_padding_mask`` ``(B, N)`` (``True`` = padding) or ``None``. The official
    ``seq_avg`` adds ``window - 1`` right-shifted copies of the (padding-zeroed) sequence and divides by the
    shifted mask count plus ``1e-24``; here the same sum is written with shifts, and an all-padding window gives
    exactly zero (no division by ``1e-24``). O(window · N · D); exactly causal (no cumulative sums).
    """
    n = x.shape[2]
    valid = torch.ones(x.shape[0], n, dtype=x.dtype, device=x.device) if key_padding_mask is None \
        else (~key_padding_mask).to(x.dtype)
    weight = valid[:, None, :, None]  # (B, 1, N, 1)
    masked = x * weight if key_padding_mask is not None else x
    total = torch.zeros_like(x)
    count = torch.zeros_like(weight)
    for lag in range(min(window, n)):
        total = total + F.pad(masked[:, :, :n - lag], (0, 0, lag, 0))
        count = count + F.pad(weight[:, :, :n - lag], (0, 0, lag, 0))
    return torch.where(count > 0, total / count.clamp_min(1), 0)
