"""Channels-first input for any channels-last spatial layer (timm's HaloAttn and CNN code take ``(B, C, H, W)``)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelsFirst(nn.Module):
    """Wraps a channels-last layer ``(B, *grid, C) -> (B, *grid, C)`` so that it takes and returns
    ``(B, C, *grid)``: the input is moved to channels last, the layer runs, the output is moved back.
    ``attnzoo.create(name, channels_first=True)`` builds a registered spatial layer this way. The layer's own
    checks see the channels-last tensor, so a wrong channel count is still named as such (a channels-first
    tensor passed to the unwrapped layer would be read with its last spatial axis as channels)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            raise ValueError(f"input has shape {tuple(getattr(x, 'shape', ()))}; expected (B, C, *grid) "
                             "(channels first)")
        return self.layer(x.movedim(1, -1)).movedim(-1, 1)
