"""DiffQKV attention through SDPA's flash kernel, K and V heads never repeated (``impl="sdpa"``).

When one of ``Hk``, ``Hv`` divides the other (every configuration of the paper, and MHA / MQA / GQA), the query
heads fall into groups that share one head of the scarcer tensor: with ``Hk | Hv`` (Sigma: 4 K, 16 V heads) the
``Hq / Hk`` query heads of K head ``c`` read V heads ``c · Hv / Hk ...`` in equal sub-groups. Folding the groups into
the batch, ``query (B · Hk, Hq / Hk, Nq, D)`` and ``value (B · Hk, Hv / Hk, Nk, Dv)`` are views, and the shared key
is the stride-0 view ``key (B · Hk, 1, Nk, D).expand(B · Hk, Hv / Hk, Nk, D)``, which SDPA's CPU flash kernel reads
through its head stride (``FlashAttentionKernel.cpp`` indexes ``k_data + j · kStrideH``; no aten op copies it, as
``tests/test_diffqkv.py`` records); then one :func:`attnzoo.ops.softmax.sdpa.softmax_sdpa` call with ``enable_gqa``
inside each group (the mirror image for ``Hv | Hk``). The backward forms the gradient of the expanded view,
``Hv / Hk`` copies of the key's size, and sums it. That is Sigma's own route (Appendix
E shares the scarcer of K and V up to the other's head count, then runs GQA FlashAttention) without the copy
Appendix E makes. Head counts where neither divides the other (6 query heads over 3 K and 2 V heads; no paper
uses them) expand both K and V to ``lcm(Hk, Hv)`` heads first. Masks are regrouped with the queries. First-order
backward (SDPA's CPU flash kernel has none of second order), no ``top_k``, no weights: ``impl="grouped"``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from attnzoo.ops.dropin import DropIn
from attnzoo.ops.softmax.sdpa import softmax_sdpa


def _regroup_masks(dropin: DropIn, batch: int, groups: int) -> DropIn:
    """``dropin`` with its batched masks laid out for ``batch · groups`` folded batch entries (query heads
    ``(B, Hq)`` -> ``(B · groups, Hq / groups)``); a plain ``(Nq, Nk)`` mask and ``cu_seqlens`` stay as they are."""
    mask, padding = dropin.attn_mask, dropin.key_padding_mask
    if mask is not None and mask.dim() == 4:
        if mask.shape[1] == 1:
            mask = mask.repeat_interleave(groups, dim=0)
        else:
            mask = mask.reshape(batch * groups, mask.shape[1] // groups, *mask.shape[2:])
    if padding is not None:
        padding = padding.repeat_interleave(groups, dim=0)
    return replace(dropin, attn_mask=mask, key_padding_mask=padding)


def diffqkv_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, is_causal: bool, scale: float,
                 top_k: None, dropin: DropIn) -> torch.Tensor:
    """See the module; ``(B, Hq, Nq, D)``, ``(B, Hk, Nk, D)``, ``(B, Hv, Nk, Dv)`` -> ``(B, Hq, Nq, Dv)``."""
    b, hq, nq, d = query.shape
    hk, nk = key.shape[1], key.shape[2]
    hv, dv = value.shape[1], value.shape[3]
    if hk % hv and hv % hk:  # neither divides the other: both to lcm(Hk, Hv) heads, then plain GQA
        common = math.lcm(hk, hv)
        key, value = key.repeat_interleave(common // hk, 1), value.repeat_interleave(common // hv, 1)
        hk = hv = common
    groups = min(hk, hv)  # the scarcer head count: one folded batch entry per head of it
    shared = max(hk, hv) // groups  # heads of the other tensor per group
    query = query.reshape(b * groups, hq // groups, nq, d)
    key = key.reshape(b * groups, hk // groups, nk, d).expand(-1, shared, -1, -1)
    value = value.reshape(b * groups, hv // groups, nk, dv).expand(-1, shared, -1, -1)
    dropin = replace(_regroup_masks(dropin, b, groups), gqa=hq // groups != shared)
    out = softmax_sdpa(query, key, value, is_causal=is_causal, scale=scale, dropin=dropin)
    return out.reshape(b, hq, nq, dv)
