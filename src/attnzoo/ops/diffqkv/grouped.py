"""DiffQKV attention without repeated K or V: the fast path of :func:`attnzoo.ops.diffqkv_attention`.

Query heads are laid out so that the ``r_k = Hq / Hk`` heads sharing a key head are contiguous (Eq. 3 with
divisor counts), so ``query.reshape(B, Hk, r_k · Nq, D) @ keyᵀ`` is one batched GEMM per key head that yields
the scores of all of its query heads, a view back to ``(B, Hq, Nq, Nk)``; the probabilities are regrouped the same
way by value head, ``(B, Hv, r_v · Nq, Nk) @ value``. K and V are read in place, never expanded to ``Hq`` heads
(the reference's index-expansion and HF's ``repeat_kv`` copy them ``Hq / Hk`` and ``Hq / Hv`` times). ``top_k``
keeps, per query, the ``top_k`` highest scores among the visible keys (``torch.topk`` then a boolean scatter)
and zeroes the other weights before the second GEMM. Plain autograd (any order). Time O(Hq Nq Nk (D + Dv)),
memory O(Hq Nq Nk) for scores and probabilities, as the reference: the path for ``top_k`` and weights, which
need the scores; without them ``impl="sdpa"`` (:mod:`.sdpa`) is faster.
"""

from __future__ import annotations

import torch

from attnzoo.ops.dense import attend_values, check_dense_size
from attnzoo.ops.dropin import DropIn, dropin_visibility
from attnzoo.ops.softmax.functional import causal_mask_mod


def grouped_scores(query: torch.Tensor, key: torch.Tensor, scale: float) -> torch.Tensor:
    """``(B, Hq, Nq, Nk)`` scores of every query head against its shared key head, one GEMM per key head."""
    b, hq, nq, d = query.shape
    hk, nk = key.shape[1], key.shape[2]
    return torch.matmul(query.reshape(b, hk, hq // hk * nq, d), key.transpose(-1, -2)).view(b, hq, nq, nk) * scale


def grouped_values(probs: torch.Tensor, value: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """``(B, Hq, Nq, Nk)`` probabilities times their shared value heads -> ``(B, Hq, Nq, Dv)``, one GEMM per value
    head (:func:`attnzoo.ops.dense.attend_values`, so a non-finite value reaches only the queries that see it)."""
    b, hq, nq, nk = probs.shape
    hv = value.shape[1]
    grouped = (b, hv, hq // hv * nq, nk)
    out = attend_values(probs.reshape(grouped), value, visible.expand(b, hq, nq, nk).reshape(grouped))
    return out.view(b, hq, nq, value.shape[-1])


def diffqkv_grouped(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, is_causal: bool, scale: float,
                    top_k: int | None, dropin: DropIn) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """See the module. Masks as :func:`attnzoo.ops.dropin.dropin_visibility` (the reference's); a query that sees
    no key outputs zeros with zero gradients. With no mask but the causal one (which leaves every query a key)
    the scores are masked in place and nothing else is checked."""
    b, hq, nq, _ = query.shape
    nk = key.shape[2]
    check_dense_size("the dense score matrix", (b, hq, nq, nk), query.dtype, "impl='sdpa', without top_k")
    scores = grouped_scores(query, key, scale)
    visible = dropin_visibility(causal_mask_mod if is_causal else None, dropin, (b, hq, nq, nk), query.device)
    masked = dropin.attn_mask is not None or dropin.key_padding_mask is not None or dropin.cu_seqlens is not None
    if masked:
        if dropin.attn_mask is not None and dropin.attn_mask.dtype != torch.bool:
            scores = scores + dropin.attn_mask
        visible = visible & (scores != float("-inf"))  # an additive -inf hides the pair too
        sees_any = visible.any(-1, keepdim=True)
        scores = scores.masked_fill(~visible, float("-inf")).masked_fill(~sees_any, 0)
        probs = torch.softmax(scores, dim=-1) * sees_any
    else:
        if is_causal:
            scores = scores.masked_fill(~visible, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
    if top_k is not None:
        kept = scores.topk(top_k, dim=-1).indices  # hidden keys score -inf (rows that see none: no key kept)
        selected = torch.zeros(scores.shape, dtype=torch.bool, device=query.device).scatter(-1, kept, True)
        visible = visible & selected
        probs = probs * visible
    out = grouped_values(probs, value, visible)
    return (out, probs) if dropin.return_weights else out
