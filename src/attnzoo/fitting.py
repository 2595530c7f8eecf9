"""Sizes that fit a local mechanism's window, block or group to a model's token grid (``Variant.fit_options``)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is at most ``at_most`` (1 if ``at_most < 1``)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def grid_block(grid: Sequence[int], extent: int) -> int:
    """A square block that tiles ``grid`` exactly: the largest common divisor of its sides up to ``extent``; the
    whole common side when only 1 would do (a grid with a prime side: one block, global attention)."""
    side = math.gcd(*grid)
    block = largest_divisor(side, extent)
    return side if block == 1 else block
