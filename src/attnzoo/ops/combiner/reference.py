"""The oracles of Combiner (arXiv 2107.05768): dense scores over every key and every summary of the sequence,
with the explicit per-query visibility of :mod:`attnzoo.ops.combiner.segments`, and one softmax per query over
the direct keys and the summaries together. O(N · (N + summaries)) time and memory; float64-friendly."""

from __future__ import annotations

import torch

from attnzoo.ops.combiner.pooling import pool_segments
from attnzoo.ops.combiner.segments import direct_visible, summary_visible
from attnzoo.ops.dense import dense_attention


def _positions(length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(length, device=device)
    return idx[:, None], idx[None, :]


def combiner_fixed_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, segment_length: int,
                             is_causal: bool, summary: str, summarize_own_segment: bool,
                             scale: float) -> torch.Tensor:
    """Combiner-Fixed, densely: keys ``[K ; K̄]`` (the ``N`` keys and the ``N / s`` span keys ``K̄_r =
    pool(K_r)``) and values ``[V ; V̄]`` (span values ``V̄_r = softmax(pool(Q_r) K_rᵀ · scale) V_r``, attention of
    the pooled query over its segment), an ``(N, N + N / s)`` mask, one softmax."""
    s, n = segment_length, query.shape[2]
    i, j = _positions(n, query.device)
    segment = torch.arange(n // s, device=query.device)
    member = segment[:, None] == j // s  # (S, N): token j belongs to segment r
    span_value = dense_attention(pool_segments(query, s, summary), key, value, mask=member, scale=scale)
    visible = torch.cat([direct_visible(i, j, s, is_causal),
                         summary_visible(i // s, segment[None, :], is_causal, summarize_own_segment)], dim=1)
    keys = torch.cat([key, pool_segments(key, s, summary)], dim=2)
    return dense_attention(query, keys, torch.cat([value, span_value], dim=2), mask=visible, scale=scale)


def row_attention_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, segment_length: int,
                            scale: float) -> torch.Tensor:
    """Bidirectional attention inside each segment (row) through a dense ``(N, N)`` same-segment mask."""
    i, j = _positions(query.shape[2], query.device)
    return dense_attention(query, key, value, mask=direct_visible(i, j, segment_length, False), scale=scale)


def combiner_axial_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, segment_length: int,
                             is_causal: bool, row_summary: str, summary_key: torch.Tensor | None,
                             summarize_own_segment: bool, scale: float) -> torch.Tensor:
    """Combiner-Axial, densely: keys ``[K ; K̃]`` and values ``[V ; Ṽ]`` where ``Ṽ_t`` is the bidirectional row
    attention output at token ``t`` (its row summarised by its own query) and ``K̃_t`` its key (``K_t``,
    ``"wsum"``: the row-attention average of the row's keys, or the given ``summary_key``); query ``t`` sees the
    summaries at its own column of the other (causal: earlier) rows. An ``(N, 2N)`` mask, one softmax."""
    s, n = segment_length, query.shape[2]
    i, j = _positions(n, query.device)
    row_value = row_attention_reference(query, key, value, segment_length=s, scale=scale)
    if summary_key is None:
        summary_key = (row_attention_reference(query, key, key, segment_length=s, scale=scale)
                       if row_summary == "wsum" else key)
    column = (i % s == j % s) & summary_visible(i // s, j // s, is_causal, summarize_own_segment)
    visible = torch.cat([direct_visible(i, j, s, is_causal), column], dim=1)
    return dense_attention(query, torch.cat([key, summary_key], dim=2), torch.cat([value, row_value], dim=2),
                           mask=visible, scale=scale)
