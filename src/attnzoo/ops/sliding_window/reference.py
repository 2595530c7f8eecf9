"""The oracle of the sliding-window family: dense scores, explicit mask built from the pattern's mask function,
with every drop-in feature (:mod:`attnzoo.ops.dropin`)."""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn, dropin_attention
from attnzoo.ops.sliding_window.patterns import SequencePattern


def sequence_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, pattern: SequencePattern,
                       scale: float, dropin: DropIn = DropIn()) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(B, Hq, Nq, D)`` queries, ``(B, Hkv, Nk, D)`` keys -> ``(B, Hq, Nq, Dv)`` through the ``(Nq, Nk)`` mask
    of the pattern (per head for head-dependent patterns) and the call's drop-in options; O(Nq · Nk) time and
    memory."""
    return dropin_attention(query, key, value, dropin=dropin, pattern=pattern.mask_mod(), scale=scale)
