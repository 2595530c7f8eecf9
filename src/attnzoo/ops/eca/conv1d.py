"""ECA's fast path: the pooled descriptor through ``F.conv1d`` with one input and one output channel, as the
official ``eca_module.py`` runs it (O(C k + CHW))."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def eca_conv1d(x: torch.Tensor, weight: torch.Tensor, circular: bool = False) -> torch.Tensor:
    """``x ⊙ σ(conv1d(GAP(x)))`` over the channel axis, padded by ``(k - 1) / 2`` zeros (or circularly) on each
    side: ``x`` ``(B, C, H, W)``, ``weight`` ``(k,)``."""
    pad = (weight.shape[0] - 1) // 2
    z = x.mean(dim=(2, 3))[:, None, :]  # (B, 1, C): the channels as a 1-D signal
    z = F.pad(z, (pad, pad), mode="circular" if circular else "constant")
    gate = torch.sigmoid(F.conv1d(z, weight.view(1, 1, -1)))  # (B, 1, C)
    return x * gate.view(x.shape[0], x.shape[1], 1, 1)
