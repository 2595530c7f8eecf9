"""The oracle of clipped softmax attention (arXiv 2306.12929): dense scores, an explicit mask, the clipped
softmax of :mod:`attnzoo.ops.clipped_softmax.stretch`, every drop-in feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnzoo.ops.clipped_softmax.scores import additive_mask, masked_scores
from attnzoo.ops.clipped_softmax.stretch import stretch
from attnzoo.ops.dense import attend_values, check_dense_size
from attnzoo.ops.dropin import DropIn, dropin_visibility
from attnzoo.ops.softmax.functional import causal_mask_mod


def clipped_softmax_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, is_causal: bool,
                              scale: float, gamma: float, zeta: float,
                              dropin: DropIn) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``clip((ζ − γ) softmax(q kᵀ · scale + mask) + γ, 0, 1) v`` with the full ``(B, Hq, Nq, Nk)`` score matrix;
    the mask is :func:`attnzoo.ops.dropin.dropin_visibility` (causal bottom-right when ``is_causal``, boolean
    ``attn_mask``, key padding, packed sequences) and an additive ``attn_mask``. Masked pairs get probability 0,
    hence ``clip(γ) = 0`` (γ ≤ 0); a query that sees no key outputs zeros. ``return_weights``: the clipped
    probabilities (before dropout). O(Nq · Nk · D) time, O(Nq · Nk) memory."""
    b, hq, nq, _ = query.shape
    nk = key.shape[2]
    check_dense_size("the dense score matrix", (b, hq, nq, nk), query.dtype, "impl='chunked'")
    if dropin.gqa:
        key, value = (t.repeat_interleave(hq // key.shape[1], dim=1) for t in (key, value))
    visible = dropin_visibility(causal_mask_mod if is_causal else None, dropin, (b, hq, nq, nk), query.device)
    scores, visible, any_visible = masked_scores(query, key, scale, additive_mask(dropin.attn_mask), visible)
    weights = stretch(torch.softmax(scores, dim=-1) * any_visible, gamma, zeta).clamp(0, 1)
    probs = F.dropout(weights, dropin.dropout_p) if dropin.dropout_p > 0 else weights
    out = attend_values(probs, value, visible)
    return (out, weights) if dropin.return_weights else out
