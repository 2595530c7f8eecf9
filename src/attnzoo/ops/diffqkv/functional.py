"""DiffQKV attention (Sigma, Lin et al. 2025, arXiv 2501.13629, Section 2 and Appendix B): queries, keys and values
with their own head counts ``n_hq``, ``n_hk``, ``n_hv`` and head dims, K and V heads shared independently, and
optional selective V fetching (Appendix B.2).

For query head ``i`` at position ``t`` (Section 2)::

    α_{t,i} = softmax_j( q_{t,i} · K_{j, g_k(i)} · scale )            over the keys the query sees
    o_{t,i} = Σ_{j ∈ S} α_{j,i} V_{j, g_v(i)}                           g_k(i) = ⌊i n_hk / n_hq⌋, g_v(i) = ⌊i n_hv / n_hq⌋

with ``S`` every visible key, or with ``top_k`` the ``top_k`` keys of highest score ("Sel.V-top100"). The
weights are the softmax over *every* visible key (Sigma computes α with the whole K cache before
``LoadCacheV(&Vcache, α)`` fetches the selected V rows) and are not renormalised over ``S``: the reading of
Section 2's equations, which sum ``α_{j,i}`` over the fetched rows; the paper gives no renormalisation. Sigma
always keeps the current token's own ``v_t`` and selects among the cached ones; this op, which also serves
non-causal and cross attention where no key is "current", selects among all visible keys. ``top_k`` equal to
the number of keys is exact attention. MHA (``n_hk = n_hv = n_hq``), MQA (``n_hk = n_hv = 1``) and GQA
(``n_hk = n_hv``) are the special cases (Appendix B.1).

Half K dim and augmented Q (the feed-forward layer that maps ``d_hk`` to the query's dim; the gated Q MLP) are
parameters, and live in :class:`attnzoo.layers.DiffQKVAttention`; this op takes keys already in the query's
head dim.

Implementations, in ``auto``'s order: ``sdpa`` (:mod:`.sdpa`: the groups of query heads that share a head of the
scarcer of K and V folded into the batch, the shared head a stride-0 view, one SDPA flash call with ``enable_gqa``;
no ``top_k``, no weights, first-order backward), ``grouped`` (:mod:`.grouped`: each group of query heads that shares
a K head is one batched GEMM against that head, the probabilities regrouped by V head for the second GEMM; every
option, any-order autograd); neither forms K or V repeated to the query heads; and ``reference`` (:mod:`.reference`: K and V index-expanded to every query head by Eq. 3, the dense drop-in oracle,
the top-k V rows gathered explicitly). Verified: equal forward and backward in float64 and float32 on the cases of
``testing.py``; reductions to MHA / GQA / ``repeat_interleave``, exact top-k at ``k = Nk`` and Hugging Face
``LlamaAttention`` in ``tests/test_diffqkv.py``. No official DiffQKV code exists (the paper's Appendix E shows only
the K/V group-sharing workaround, which this op's reference follows).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from attnzoo.ops.diffqkv.heads import check_shared_heads
from attnzoo.ops.dropin import check_dropin
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import (
    check_flag,
    check_float_tensors,
    check_one_dtype_and_device,
    check_optional_int,
    check_scale,
)

LAYOUT = "(B, H, N, D)"


def check_diffqkv_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    """Query ``(B, Hq, Nq, D)``, key ``(B, Hk, Nk, D)``, value ``(B, Hv, Nk, Dv)``: ``Hk`` and ``Hv`` divisors of
    ``Hq`` (:mod:`.heads`), ``Nk >= Nq`` (the queries are the last ``Nq`` positions), one dtype and device."""
    check_float_tensors({"query": query, "key": key, "value": value}, 4, LAYOUT)
    (b, hq, nq, d), (bk, hk, nk, dk), (bv, hv, nv, dv) = query.shape, key.shape, value.shape
    if (bk, dk) != (b, d):
        raise ValueError(f"key has shape {tuple(key.shape)}; expected batch {b} and head dim {d} of the query "
                         f"{tuple(query.shape)} {LAYOUT} (keys of a smaller head dim go through the layer's K "
                         "transform first)")
    if nk < nq:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected at least the query's {nq} tokens, Nk >= Nq "
                         f"(the queries are the last Nq positions of the key sequence) {LAYOUT}")
    if (bv, nv) != (b, nk):
        raise ValueError(f"value has shape {tuple(value.shape)}; expected batch {b} and the key's {nk} tokens "
                         f"{LAYOUT}")
    if hq < 1 or d == 0 or dv == 0 or nq == 0:
        raise ValueError(f"query {tuple(query.shape)}, value {tuple(value.shape)}: expected at least one head and "
                         "one token, head dims >= 1")
    check_shared_heads("key", hk, hq)
    check_shared_heads("value", hv, hq)
    check_one_dtype_and_device(query, key, value)


def diffqkv_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, is_causal: bool = False,
                      scale: float | None = None, impl: str = "auto", *, top_k: int | None = None,
                      attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                      cu_seqlens: torch.Tensor | None = None,
                      return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """DiffQKV attention (see the module): ``(B, Hq, Nq, D)`` queries, ``(B, Hk, Nk, D)`` keys and
    ``(B, Hv, Nk, Dv)`` values -> ``(B, Hq, Nq, Dv)``, query head ``i`` reading key head ``⌊i Hk / Hq⌋`` and value
    head ``⌊i Hv / Hq⌋`` (``Hk``, ``Hv`` divisors of ``Hq``).

    ``is_causal``: bottom-right aligned (query ``i`` at position ``Nk - Nq + i`` sees keys ``j <= Nk - Nq + i``,
    so a decode step sees its whole cache). ``scale`` defaults to ``D ** -0.5``. ``top_k`` (``1 <= top_k <=
    Nk``): each query sums the values of its ``top_k`` highest-scoring visible keys only, weighted by the softmax
    over all its visible keys (selective V fetching; a query that sees fewer keys uses them all). Drop-in options
    (:mod:`attnzoo.ops.dropin`): ``attn_mask``, ``key_padding_mask``, packed ``cu_seqlens``, ``return_weights``
    (then ``(out, weights)``, the weights actually applied, zero outside the selected keys). A query that sees no
    key outputs zeros. ``impl``: ``"auto"``, ``"sdpa"``, ``"grouped"`` or ``"reference"``. Time O(Hq · Nq · Nk · (D + Dv)),
    memory O(Hq · Nq · Nk) for the scores.

    >>> import torch
    >>> q = torch.randn(2, 8, 10, 16)                                   # 8 query heads
    >>> k, v = torch.randn(2, 2, 10, 16), torch.randn(2, 4, 10, 32)    # 2 key heads, 4 value heads of dim 32
    >>> diffqkv_attention(q, k, v, is_causal=True, top_k=4).shape
    torch.Size([2, 8, 10, 32])
    """
    check_diffqkv_inputs(query, key, value)
    # the drop-in options are validated as for any sequence op; the key stands in for the value there, whose own
    # shape (its head count and dim) was checked above
    dropin = check_dropin(query, key, key, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=key.shape[1] != query.shape[1], dropout_p=0.0,
                          return_weights=return_weights)
    dropin = replace(dropin, enable_gqa=False, gqa=False)  # head sharing is this op's own, not the drop-in GQA
    check_flag("is_causal", is_causal)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    check_optional_int("top_k", top_k)
    if top_k is not None and top_k > key.shape[2]:
        raise ValueError(f"top_k={top_k!r}: expected at most the number of keys Nk={key.shape[2]} (top_k = Nk is "
                         "exact attention)")
    features = dropin.features | ({"top_k"} if top_k is not None else set())
    implementation = select_implementation("diffqkv_attention", impl, CallFacts.of(
        [query, key, value], causal=is_causal, features=features, length=key.shape[2]))
    return implementation.fn(query, key, value, is_causal=is_causal, scale=scale, top_k=top_k, dropin=dropin)
