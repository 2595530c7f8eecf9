"""The oracle of SDANet's selective attention: one level at a time, the spatial convolutions as explicit tap sums."""

from __future__ import annotations

import torch

from attnzoo.ops.feature_maps import batch_norm_reference
from attnzoo.ops.taps import conv2d_taps


def selective_reference(levels: torch.Tensor, squeeze_weight: torch.Tensor, norm: tuple, excite_weight: torch.Tensor,
                        excite_bias: torch.Tensor | None, spatial_weight: torch.Tensor, branches: str) -> torch.Tensor:
    """``Σ_i a_i ⊙ F_i + Σ_i w_i ⊙ F_i`` for ``levels`` ``(B, M, C, H, W)`` (the terms ``branches`` names):
    ``z = ReLU(BN(W_s · mean_HW(Σ_i F_i)))`` (``norm``: the batch norm's weight, bias, running statistics,
    training, momentum, eps), channel logits ``W_i z + b_i`` and spatial logits ``K_i ∗ cat(mean_c U, max_c U)``
    (``U = Σ_i F_i``), each softmaxed across the ``M`` levels."""
    m = levels.shape[1]
    summed = levels[:, 0]
    for i in range(1, m):
        summed = summed + levels[:, i]
    pooled_channels = summed.mean(dim=(2, 3))  # GAP(U), (B, C)
    squeezed = torch.einsum("bc,dc->bd", pooled_channels, squeeze_weight)[..., None, None]
    descriptor = torch.relu(batch_norm_reference(squeezed, *norm))[..., 0, 0]  # (B, d)
    channel_logits = [descriptor @ excite_weight[i].T + (0 if excite_bias is None else excite_bias[i])
                      for i in range(m)]  # each (B, C)
    channel = torch.softmax(torch.stack(channel_logits, dim=1), dim=1)  # (B, M, C)
    pooled = torch.cat((summed.mean(dim=1, keepdim=True), summed.amax(dim=1, keepdim=True)), dim=1)  # (B, 2, H, W)
    spatial_logits = [conv2d_taps(pooled, spatial_weight[i:i + 1]) for i in range(m)]  # each (B, 1, H, W)
    spatial = torch.softmax(torch.cat(spatial_logits, dim=1), dim=1)  # (B, M, H, W)
    out = torch.zeros_like(levels[:, 0])
    for i in range(m):
        if branches in ("both", "channel"):
            out = out + channel[:, i, :, None, None] * levels[:, i]
        if branches in ("both", "spatial"):
            out = out + spatial[:, i, None] * levels[:, i]
    return out
