"""Rounding to the integer grid: to nearest (ties to even, as ``torch.round``) or stochastic.

Stochastic rounding: ``SR(y) = ⌊y⌋ + 1`` with probability ``y − ⌊y⌋``, else ``⌊y⌋``, drawn as ``⌊y + u⌋`` with
``u ~ U[0, 1)``; so ``E[SR(y)] = y`` (unbiased) and its variance is ``f (1 − f)`` with ``f = y − ⌊y⌋`` (tested
statistically in ``tests/test_quant_properties.py`` against that standard error).
"""

from __future__ import annotations

from typing import Literal

import torch

Rounding = Literal["nearest", "stochastic"]
ROUNDINGS: tuple[Rounding, ...] = ("nearest", "stochastic")


def check_rounding(rounding: str) -> Rounding:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r}: expected one of {ROUNDINGS}")
    return rounding  # type: ignore[return-value]


def round_to_integer(y: torch.Tensor, rounding: Rounding, generator: torch.Generator | None = None) -> torch.Tensor:
    """``y`` rounded to integers (same dtype); ``generator`` draws the stochastic rounding's uniforms."""
    if rounding == "nearest":
        return torch.round(y)
    u = torch.rand(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    return torch.floor(y + u)
