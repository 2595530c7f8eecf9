"""The token reallocation of SG-Former's self-guided attention (arXiv 2308.12216, section 3.2), described once.

Pixels are ranked by ascending significance and the ranking is cut into consecutive groups of
``group_sizes`` pixels (least significant first); group ``l`` is merged ``rates[l]`` pixels -> 1 key, so it
yields ``group_sizes[l] / rates[l]`` keys. Pixels of equal significance are ranked by their position in the
head group's tie-break order: ``"row"`` (row-major, the official ``mask_1``) or ``"column"`` (column-major, the
official ``mask_2``); the heads are split evenly into one group per entry of ``tie_breaks``. A NaN significance
ranks above everything (as in ``torch.sort``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

TIE_BREAKS = ("row", "column")


@dataclass(frozen=True)
class Reallocation:
    """Grid ``shape``, group sizes and merge rates per significance level (least significant first), the
    tie-break order of each head group."""

    shape: tuple[int, int]
    group_sizes: tuple[int, ...]
    rates: tuple[int, ...]
    tie_breaks: tuple[str, ...]

    @property
    def num_tokens(self) -> int:
        return math.prod(self.shape)

    @property
    def level_keys(self) -> tuple[int, ...]:
        """Keys each level yields, ``group_sizes[l] / rates[l]``."""
        return tuple(n // r for n, r in zip(self.group_sizes, self.rates))

    @property
    def num_keys(self) -> int:
        return sum(self.level_keys)

    @property
    def group_starts(self) -> tuple[int, ...]:
        """Rank of the first pixel of each group."""
        return tuple(itertools.accumulate(self.group_sizes, initial=0))[:-1]

    @property
    def weight_starts(self) -> tuple[int, ...]:
        """Offset of each level's ``rates[l]`` weights in the concatenated ``pool_weight``."""
        return tuple(itertools.accumulate(self.rates, initial=0))[:-1]


def tie_break_position(order: str, shape: tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """``(X·Y,)``: each row-major pixel's position in the ``order`` flattening (its rank among equals)."""
    rows, cols = shape
    index = torch.arange(rows * cols, device=device)
    return index if order == "row" else (index % cols) * rows + index // cols


def split_sizes(num_tokens: int, split: tuple[int, ...]) -> tuple[int, ...]:
    """Group sizes for relative proportions ``split`` of ``num_tokens`` pixels, cut at
    ``floor(num_tokens · cumsum(split) / sum(split))`` (the official quarters ``[:N//4]``, ``[N//4:N//4*3]``,
    ``[N//4*3:]`` for ``split = (1, 2, 1)`` when ``N % 4 == 0``)."""
    total = sum(split)
    bounds = [num_tokens * c // total for c in itertools.accumulate(split, initial=0)]
    return tuple(b - a for a, b in itertools.pairwise(bounds))
