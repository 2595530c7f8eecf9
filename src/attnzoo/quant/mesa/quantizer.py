"""Mesa's 8-bit store of one saved activation (arXiv 2111.11124, ``ziplab/Mesa`` ``custom_quant.py`` and the CUDA
pack kernel, transcribed): per group running estimates, EMA decay 0.9, the first call setting them directly::

    range_g <- EMA(max_g - min_g),   shift_g <- EMA(min_g),   scale_g = (levels - 1) / |range_g|
    q = clamp(SR((x - shift_g) · scale_g), 0, levels - 1)  (a byte),   x̂ = q / scale_g + shift_g

with ``SR`` unbiased stochastic rounding (Mesa: ``rint(max(y + u - 0.5, 0))``; its missing upper clamp wraps
through ``& 0xFF`` on unpack, the catalog's note: clamped here). Inside the running range the error is below one
step ``1 / scale_g``, and ``E[x̂] = x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnzoo.quant.mesa.grouping import from_groups, to_groups
from attnzoo.quant.rounding import round_to_integer


@dataclass(frozen=True)
class PackedActivation:
    """A saved activation as bytes: ``codes (g, -1)`` uint8, per-group ``scale`` and ``shift``, and how to put
    it back (``shape``, ``dtype``)."""

    codes: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return self.codes.numel() * self.codes.element_size() + 2 * self.scale.numel() * self.scale.element_size()

    def unpack(self) -> torch.Tensor:
        groups = self.codes.shape[0]
        x = self.codes.to(self.scale.dtype) / self.scale[:, None] + self.shift[:, None]
        return from_groups(x, groups, self.shape).to(self.dtype)


class RunningRangeQuantizer:
    """The running ``range`` / ``shift`` of one saved activation (one per save position of a wrapped forward)
    and its pack step; ``levels`` = 2^bits (Mesa: 256)."""

    def __init__(self, levels: int = 256, ema_decay: float = 0.9) -> None:
        self.levels, self.ema_decay = levels, ema_decay
        self.range: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None

    def update(self, grouped: torch.Tensor) -> None:
        """Mesa's ``update_clip_val_shift`` on the ``(g, -1)`` view (float32 statistics)."""
        low, high = grouped.detach().float().aminmax(dim=1)
        if self.range is None or self.range.shape != low.shape:
            self.range, self.shift = high - low, low
        else:
            self.range = self.range - (1 - self.ema_decay) * (self.range - (high - low))
            self.shift = self.shift - (1 - self.ema_decay) * (self.shift - low)

    def pack(self, x: torch.Tensor, groups: int, generator: torch.Generator | None = None) -> PackedActivation:
        grouped, g = to_groups(x.detach(), groups)
        self.update(grouped)
        # a constant group (range 0) is stored exactly at its shift: any finite scale gives code 0
        scale = (self.levels - 1) / torch.where(self.range == 0, torch.ones_like(self.range), self.range.abs())
        y = (grouped.float() - self.shift[:, None]).mul_(scale[:, None])
        codes = round_to_integer(y, "stochastic", generator).clamp_(0, self.levels - 1).to(torch.uint8)
        return PackedActivation(codes, scale, self.shift.clone(), x.shape, x.dtype)
