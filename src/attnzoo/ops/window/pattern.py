"""Swin's (shifted) window pattern (DaViT arXiv 2204.03645, LaMamba-Diff arXiv 2408.02615, GC ViT arXiv 2206.09959),
written once in original coordinates.

Swin rolls the grid by ``-s``, cuts it into ``w x w`` windows and, in the windows that wrap around, masks
pairs from different regions (its ``img_mask`` slices ``[0, L-w), [L-w, L-s), [L-s, L)`` of the rolled grid).
Back in original coordinates this is one rule per axis: tokens ``i`` and ``j`` attend iff they have the same
group ``(i + w - s) // w``. Pixels ``i < s`` (those that wrap) form group 0, pixel ``i >= s`` is in group
``(i - s) // w + 1`` (its rolled window, plus one), so a wrapped pixel never meets the others of its rolled
window; with ``s = 0`` the groups are the plain windows ``i // w + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnzoo.masks import MaskMod, unflatten_index


@dataclass(frozen=True)
class WindowPattern:
    """Non-overlapping ``window`` windows after a cyclic shift by ``-shift`` on a grid of ``shape``."""

    shape: tuple[int, int]
    window: tuple[int, int]
    shift: tuple[int, int]

    @property
    def num_tokens(self) -> int:
        return math.prod(self.shape)

    @property
    def radius(self) -> tuple[int, ...]:
        """Reach of the relative position bias: offsets up to ``w - 1`` per axis (table ``2w - 1``)."""
        return tuple(w - 1 for w in self.window)

    def mask_mod(self) -> MaskMod:
        def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            visible = None
            for qc, kc, w, s in zip(unflatten_index(q_idx, self.shape), unflatten_index(kv_idx, self.shape),
                                    self.window, self.shift):
                axis = (qc + w - s) // w == (kc + w - s) // w
                visible = axis if visible is None else visible & axis
            return visible

        return mask_mod
