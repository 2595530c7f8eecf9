"""The oracle of block-local attention: dense scores and the explicit ``Nq x Nk`` mask evaluated from the
pattern's mask function, with every drop-in feature (:mod:`attnzoo.ops.dropin`)."""

from __future__ import annotations

import torch

from attnzoo.ops.block_local.pattern import BlockLocalPattern
from attnzoo.ops.dropin import DropIn, dropin_attention


def block_local_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                          pattern: BlockLocalPattern, scale: float,
                          dropin: DropIn = DropIn()) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(B, Hq, Nq, D)`` queries at the last ``Nq`` of the ``Nk`` key positions -> ``(B, Hq, Nq, Dv)``;
    O(Nq · Nk) time and memory."""
    return dropin_attention(query, key, value, dropin=dropin, pattern=pattern.mask_mod(), scale=scale)
