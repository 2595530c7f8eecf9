"""The oracle of full softmax attention: :func:`attnzoo.ops.dropin.dropin_attention` with the causal mask function
or none, every drop-in feature."""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn, dropin_attention
from attnzoo.ops.softmax.functional import causal_mask_mod


def softmax_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, is_causal: bool, scale: float,
                      dropin: DropIn = DropIn()) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Dense scores, explicit ``(Nq, Nk)`` mask (causal bottom-right when ``is_causal``) and the call's drop-in
    options; O(Nq · Nk) time and memory."""
    return dropin_attention(query, key, value, dropin=dropin, pattern=causal_mask_mod if is_causal else None,
                            scale=scale)
