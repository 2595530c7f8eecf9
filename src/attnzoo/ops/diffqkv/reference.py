"""The oracle of DiffQKV attention: K and V expanded to every query head by Sigma's Eq. 3 (an explicit index, not
a reshape), the dense drop-in oracle :func:`attnzoo.ops.dropin.dropin_attention`, and for ``top_k`` the selected
V rows gathered one by one."""

from __future__ import annotations

from dataclasses import replace

import torch

from attnzoo.ops.diffqkv.heads import shared_head_index
from attnzoo.ops.dropin import DropIn, dropin_attention
from attnzoo.ops.softmax.functional import causal_mask_mod


def diffqkv_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, is_causal: bool, scale: float,
                      top_k: int | None, dropin: DropIn) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``key[:, ⌊i Hk / Hq⌋]`` and ``value[:, ⌊i Hv / Hq⌋]`` for every query head ``i``, then dense softmax
    attention with the causal (bottom-right) mask and the call's drop-in masks. With ``top_k``: the ``top_k``
    largest weights of each query (softmax over every visible key) and their value rows, gathered into
    ``(B, Hq, Nq, top_k, Dv)`` and summed. O(Hq · Nq · Nk) time and memory."""
    hq, device = query.shape[1], query.device
    key = key.index_select(1, shared_head_index(hq, key.shape[1], device))
    value = value.index_select(1, shared_head_index(hq, value.shape[1], device))
    out, weights = dropin_attention(query, key, value, dropin=replace(dropin, return_weights=True),
                                    pattern=causal_mask_mod if is_causal else None, scale=scale)
    if top_k is not None:
        kept = weights.topk(top_k, dim=-1).indices  # (B, Hq, Nq, k); softmax keeps the order of the scores
        b, _, nq, k = kept.shape
        rows = value.gather(2, kept.reshape(b, hq, nq * k, 1).expand(-1, -1, -1, value.shape[-1]))
        kept_weights = weights.gather(-1, kept)
        out = (kept_weights[..., None] * rows.reshape(b, hq, nq, k, -1)).sum(-2)
        weights = torch.zeros_like(weights).scatter(-1, kept, kept_weights)
    return (out, weights) if dropin.return_weights else out
