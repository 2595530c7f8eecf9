"""The SSMA fusion through ``F.conv2d`` ("same" padding, as the official TF ``conv2d(padding='SAME')``) and the
family's batch norm (:func:`attnzoo.ops.norms.batch_norm`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.norms import batch_norm


def ssma_conv(x: torch.Tensor, y: torch.Tensor, reduce_weight: torch.Tensor, reduce_bias: torch.Tensor | None,
              expand_weight: torch.Tensor, expand_bias: torch.Tensor | None, fuse_weight: torch.Tensor,
              fuse_bias: torch.Tensor | None, norm: tuple) -> torch.Tensor:
    """As :func:`~attnzoo.ops.ssma.reference.ssma_reference`, three ``F.conv2d`` calls."""
    both = torch.cat((x, y), dim=1)
    hidden = F.relu(F.conv2d(both, reduce_weight, reduce_bias, padding=reduce_weight.shape[-1] // 2))
    gate = torch.sigmoid(F.conv2d(hidden, expand_weight, expand_bias, padding=expand_weight.shape[-1] // 2))
    return batch_norm(F.conv2d(both * gate, fuse_weight, fuse_bias, padding=fuse_weight.shape[-1] // 2), *norm)
