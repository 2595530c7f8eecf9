"""HyperZ·Z·W's context-dependent convolution as one grouped ``F.conv2d``: the batch folded into the channels
(``B · C`` groups), each sample convolved with its own depthwise kernel (the official ``LocalConv`` calls
``F.conv2d(x, K, groups=C)`` with one kernel for the batch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hyperzzw_conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """As :func:`~attnzoo.ops.hyperzzw.reference.hyperzzw_reference`; O(k² · C · H · W) per sample."""
    b, c, h, w = x.shape
    k = kernel.shape[-1]
    out = F.conv2d(x.reshape(1, b * c, h, w), kernel.reshape(b * c, 1, k, k), padding=(k - 1) // 2, groups=b * c)
    return out.reshape(b, c, h, w)
