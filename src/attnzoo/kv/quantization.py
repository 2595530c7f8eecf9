"""Mixed-precision K/V (ZipVL, arXiv 2410.08584, Sec. 3.3): each cached token's key and value rows quantised with
their own bit width, high for important tokens and low for the rest.

Each ``(token, head)`` row of ``D`` channels is one group of :class:`attnzoo.quant.UniformQuantizer`'s asymmetric
(affine) grid over its own range widened to include 0 (``Δ = (max(x, 0) − min(x, 0)) / (2^b − 1)``), so the
dequantisation error of every entry is at most ``Δ / 2`` (tested). ZipVL quantises keys per channel and values
per token (as ZipCache); here both are per token, so that tokens can be evicted or re-quantised independently.

The cache holds the dequantised values in its own dtype (fake quantisation: attention reads them unchanged);
:func:`packed_bytes` is the size a packed layout would take: ``b · D / 8`` bytes per row plus a scale and a zero
point in the cache's dtype, ``D · itemsize`` for an unquantised row (``bits = 0``).
"""

from __future__ import annotations

import torch

from attnzoo.quant.granularity import Granularity
from attnzoo.quant.uniform import UniformQuantizer

__all__ = ["packed_bytes", "quantize_rows", "row_step"]


def _quantizer(bits: int) -> UniformQuantizer:
    return UniformQuantizer(bits, symmetric=False, granularity=Granularity.per_row())


def quantize_rows(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, H, L, D)`` with each row ``(b, h, l)`` fake-quantised to ``bits[b, h, l]`` bits (``0``: kept as
    it is). ``O(B H L D)`` per distinct width."""
    out = x.clone()
    for width in bits.unique().tolist():
        if width == 0:
            continue
        rows = bits == width
        out[rows] = _quantizer(int(width)).quantize(x[rows])
    return out


def row_step(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The grid step ``Δ`` of each row of ``x`` ``(..., D)`` at ``bits`` (the dequantisation error is at most
    ``Δ / 2``)."""
    low, high = x.amin(dim=-1).clamp(max=0), x.amax(dim=-1).clamp(min=0)
    return ((high - low) / (2 ** bits - 1)).clamp(min=_quantizer(bits).min_scale)


def packed_bytes(bits: torch.Tensor, dim: int, itemsize: int) -> int:
    """Bytes of rows of ``dim`` channels stored at ``bits`` (``0``: unquantised, ``dim · itemsize``; else
    ``ceil(bits · dim / 8)`` plus a scale and a zero point of ``itemsize`` each)."""
    quantised = bits > 0
    packed = ((bits[quantised] * dim + 7) // 8 + 2 * itemsize).sum()
    return int(packed) + int((~quantised).sum()) * dim * itemsize
