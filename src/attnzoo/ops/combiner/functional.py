"""Combiner (Ren, Dai, Dai, Yang, Leskovec, Schuurmans, Dai, "Combiner: Full Attention Transformer with Sparse
Computation Cost", NeurIPS 2021, arXiv 2107.05768): attention as a conditional expectation whose distribution is
factorised as ``p(j|i) = sum_r p(Omega_r|i) q_r(j)``: a query attends some keys directly and the others through
summaries ("abstractions") of their region, each summary a query-independent attention over its region, with
one softmax over the direct keys and the summaries together. Every key keeps a non-zero weight (full attention
support) at O(N sqrt(N)) cost.

Transcribed from the official TF code (google-research ``combiner/combiner/tf/approx_attention.py``:
``sqrt_fixed_full``, ``axial_rowmajor``; the JAX ``_SelfAttSqrtn`` / ``_SelfAttAxialRowmajor`` agree), which
``tests/test_combiner.py`` runs transcribed in PyTorch against these ops. Deliberate differences: the official
non-causal code also summarises each query's own segment (its summary logits are unmasked), so that segment is
counted twice; here that is ``summarize_own_segment=True`` and the default is the partition (other segments
only), under which both extremes (``s = 1`` and ``s = N``) are exact dense attention. Attention dropout is not
offered. Implementations: ``segmented`` (reshape into segments, batched GEMMs, O(N (s + N/s)) memory, autograd
backward) and ``reference`` (dense N x (N + summaries) scores with the explicit mask; oracle). Verified: both
against each other forward and backward in float64 (``tests/test_contract.py``), the limits and the paper's
effective-attention identity in ``tests/test_combiner.py``.
"""

from __future__ import annotations

import torch

from attnzoo.ops.combiner.pooling import check_summary
from attnzoo.ops.combiner.segments import check_segments
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_qkv, check_scale, check_tensor_like, empty_output

FIXED = "combiner_fixed_attention"
AXIAL = "combiner_axial_attention"
LAYOUT = "(B, H, N, D)"
ROW_SUMMARIES = ("none", "wsum")
"""Parameter-free keys of Combiner-Axial's row summaries (official ``row_summary``): ``"none"``, the token's own
key; ``"wsum"``, the row-attention average of its row's keys. The official default ``"proj"`` (a learned
projection of the row outputs) lives in :class:`attnzoo.layers.CombinerAxialAttention`, which hands it to the op as
``summary_key``."""


def combiner_fixed_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, segment_length: int,
                             is_causal: bool = True, summary: str = "identity-max",
                             summarize_own_segment: bool = False, scale: float | None = None,
                             impl: str = "auto") -> torch.Tensor:
    """Combiner-Fixed (official ``sqrt_fixed_full``): ``(B, H, N, D)`` query/key, ``(B, H, N, Dv)`` value ->
    ``(B, H, N, Dv)``.

    The sequence is cut into ``N / s`` segments of ``s = segment_length`` tokens (``s`` must divide ``N``).
    Each segment ``r`` gets a span key ``k̄_r = pool(k_j, j in r)`` and a span value ``v̄_r = sum_{j in r}
    softmax_j(pool(q)_r · k_j · scale) v_j`` (attention of the pooled query over the segment); ``summary`` picks
    the pooling (:data:`attnzoo.ops.combiner.pooling.SUMMARIES`, default ``"identity-max"`` as the official
    config). Query ``i`` of segment ``g`` then takes one softmax over its direct logits ``q_i · k_j · scale``
    (``j`` in ``g``; causal: ``j <= i``) and its summary logits ``q_i · k̄_r · scale`` (causal: ``r < g``;
    bidirectional: ``r != g``, or every ``r`` with ``summarize_own_segment=True`` as the official non-causal
    code) and returns ``sum_j a_ij v_j + sum_r a_ir v̄_r``. Limits (tested): ``s = N`` is dense attention;
    ``s = 1`` with an ``identity`` summary is dense attention (causal, and bidirectional without
    ``summarize_own_segment``). ``impl``: ``"auto"``, ``"segmented"`` or ``"reference"``. Time
    O(N · (s + N / s) · D).

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 64, 16)
    >>> combiner_fixed_attention(q, k, v, segment_length=8).shape
    torch.Size([1, 2, 64, 16])
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    check_segments(segment_length, query.shape[2], is_causal, summarize_own_segment)
    check_summary(summary)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(FIXED, impl, CallFacts.of([query, key, value], causal=is_causal,
                                                                     length=query.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        return empty_output(query, key, value)
    return implementation.fn(query, key, value, segment_length=segment_length, is_causal=is_causal,
                             summary=summary, summarize_own_segment=summarize_own_segment, scale=scale)


def combiner_axial_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, segment_length: int,
                             is_causal: bool = True, row_summary: str = "none",
                             summary_key: torch.Tensor | None = None, summarize_own_segment: bool = False,
                             scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Combiner-Axial (official ``axial_rowmajor``): ``(B, H, N, D)`` query/key, ``(B, H, N, Dv)`` value ->
    ``(B, H, N, Dv)``.

    The sequence is laid out row-major as ``N / s`` rows of ``s = segment_length`` columns (``s`` must divide
    ``N``). Each token ``t = (r, c)`` is the summary of its row seen from its column: value ``ṽ_t = sum_{c'}
    softmax_{c'}(q_t · k_(r, c') · scale) v_(r, c')`` (bidirectional attention inside row ``r``) and key ``k̃_t``
    (``row_summary="none"``: ``k_t``; ``"wsum"``: the same row attention applied to the keys; or an explicit
    ``summary_key`` ``(B, H, N, D)``, for the official learned ``"proj"``, with ``row_summary="none"``). Query
    ``(r, c)`` takes one softmax over its row (causal: columns ``<= c``) directly and the summaries ``(r', c)`` of
    its column (causal: ``r' < r``; bidirectional: ``r' != r``, or every ``r'`` with ``summarize_own_segment``).
    Limits (tested): ``s = N`` and, with ``row_summary="none"``, ``s = 1`` are dense attention. ``impl``:
    ``"auto"``, ``"segmented"`` or ``"reference"``. Time O(N · (s + N / s) · D).

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 64, 16)
    >>> combiner_axial_attention(q, k, v, segment_length=8, row_summary="wsum").shape
    torch.Size([1, 2, 64, 16])
    """
    check_qkv(query, key, value, spatial_dims=1, layout=LAYOUT)
    check_segments(segment_length, query.shape[2], is_causal, summarize_own_segment)
    if not isinstance(row_summary, str) or row_summary not in ROW_SUMMARIES:
        raise ValueError(f"row_summary={row_summary!r}: expected one of {ROW_SUMMARIES}")
    tensors = [query, key, value]
    if summary_key is not None:
        check_tensor_like("summary_key", summary_key, tuple(key.shape), query)
        if row_summary != "none":
            raise ValueError(f"row_summary={row_summary!r} with a summary_key: expected row_summary='none' (the "
                             "given summary_key replaces the row summaries' keys)")
        tensors.append(summary_key)
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(AXIAL, impl, CallFacts.of(tensors, causal=is_causal,
                                                                     length=query.shape[2]))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = empty_output(query, key, value)
        return out if summary_key is None else out + summary_key.sum() * 0
    return implementation.fn(query, key, value, segment_length=segment_length, is_causal=is_causal,
                             row_summary=row_summary, summary_key=summary_key,
                             summarize_own_segment=summarize_own_segment, scale=scale)
