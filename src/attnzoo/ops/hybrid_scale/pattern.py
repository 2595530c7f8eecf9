"""The window pattern of one scale group of SG-Former's hybrid-scale attention (arXiv 2308.12216, section 3.3),
written once as a mask function over queries on the full grid and keys on the reduced grid.

The keys and values of a group with scale factor ``s`` live on the grid reduced ``s`` times per axis; they are
cut into ``M x M`` windows and the full-resolution queries into ``M·s x M·s`` windows, so query window ``w``
covers exactly the pixels that key window ``w`` summarises. Query ``(i, j)`` sees key cell ``(a, b)`` iff
``i // (M s_x) == a // M_x`` and ``j // (M s_y) == b // M_y``. With ``M`` equal to the reduced grid there is one
window (the official global branch, PVT's spatial-reduction attention); with ``s = 1`` it is non-overlapping
window attention (the official local branch, Swin without shift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnzoo.masks import MaskMod, unflatten_index


@dataclass(frozen=True)
class HybridScalePattern:
    """Queries on ``shape``, keys on ``shape / reduction``, windows of ``window`` keys per axis."""

    shape: tuple[int, int]
    reduction: tuple[int, int]
    window: tuple[int, int]

    @property
    def key_shape(self) -> tuple[int, int]:
        return tuple(n // s for n, s in zip(self.shape, self.reduction))

    @property
    def query_window(self) -> tuple[int, int]:
        """The ``M·s`` query pixels per axis that one key window summarises."""
        return tuple(m * s for m, s in zip(self.window, self.reduction))

    @property
    def num_tokens(self) -> int:
        return math.prod(self.shape)

    @property
    def num_keys(self) -> int:
        return math.prod(self.key_shape)

    def mask_mod(self) -> MaskMod:
        """``(b, h, q_idx, kv_idx)`` with ``q_idx`` row-major on the query grid, ``kv_idx`` on the key grid."""
        def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            visible = None
            for qc, kc, qw, kw in zip(unflatten_index(q_idx, self.shape), unflatten_index(kv_idx, self.key_shape),
                                      self.query_window, self.window):
                axis = qc // qw == kc // kw
                visible = axis if visible is None else visible & axis
            return visible

        return mask_mod
