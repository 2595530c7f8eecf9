"""SDANet's selective attention with every level at once: one einsum for the channel logits, one convolution with
``M`` output channels for the spatial logits, one weighted sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.norms import batch_norm


def selective_batched(levels: torch.Tensor, squeeze_weight: torch.Tensor, norm: tuple, excite_weight: torch.Tensor,
                      excite_bias: torch.Tensor | None, spatial_weight: torch.Tensor, branches: str) -> torch.Tensor:
    """As :func:`~attnzoo.ops.selective_attention.reference.selective_reference`."""
    summed = levels.sum(dim=1)
    squeezed = F.linear(summed.mean(dim=(2, 3)), squeeze_weight)[..., None, None]
    descriptor = F.relu(batch_norm(squeezed, *norm)).flatten(1)
    logits = torch.einsum("bd,mcd->bmc", descriptor, excite_weight)
    if excite_bias is not None:
        logits = logits + excite_bias
    channel = torch.softmax(logits, dim=1)[..., None, None]  # (B, M, C, 1, 1)
    pooled = torch.cat((summed.mean(dim=1, keepdim=True), summed.amax(dim=1, keepdim=True)), dim=1)
    spatial = torch.softmax(F.conv2d(pooled, spatial_weight, padding=spatial_weight.shape[-1] // 2), dim=1)
    weights = {"both": channel + spatial[:, :, None], "channel": channel, "spatial": spatial[:, :, None]}[branches]
    return (levels * weights).sum(dim=1)
