"""Combiner's sqrt decomposition (arXiv 2107.05768, Sec. 4): the sequence cut into ``N / s`` consecutive
segments of ``s`` tokens, which queries see directly or through one summary per segment (Combiner-Fixed) or per
position of another segment (Combiner-Axial). The visibility rules are written once here, as functions of token
and segment indices, and evaluated by both the dense reference (on the whole sequence) and the segmented fast
path (on the reshaped segments), so the two cannot disagree.

Causal: a query sees directly the keys of its own segment at or before it, and the summaries of strictly earlier
segments only (a summary pools a whole segment, later tokens included). Bidirectional: its whole segment directly
and the summaries of the *other* segments, so every key is counted once (the factorisation's partition of the
support); ``summarize_own_segment=True`` adds the own segment's summary as well, which is what the official TF
code's non-causal ``sqrt_fixed_full`` / ``axial_rowmajor`` compute (their summary logits carry no mask).
"""

from __future__ import annotations

import math

import torch

from attnzoo.validation import check_flag, check_int


def check_segments(segment_length: int, length: int, is_causal: bool, summarize_own_segment: bool) -> int:
    """``segment_length`` an int in ``[1, N]`` dividing ``N`` (the official code asserts ``max_seq_len %
    max_seg_len == 0``); ``summarize_own_segment`` only without ``is_causal``. Returns the segment count."""
    check_flag("is_causal", is_causal)
    check_flag("summarize_own_segment", summarize_own_segment)
    check_int("segment_length", segment_length)
    if segment_length > length:
        raise ValueError(f"segment_length={segment_length}: expected at most the sequence length N={length}")
    if length % segment_length:
        raise ValueError(f"segment_length={segment_length}: expected a divisor of the sequence length N={length} "
                         f"(N / segment_length segments of segment_length tokens)")
    if is_causal and summarize_own_segment:
        raise ValueError("summarize_own_segment=True: expected False with is_causal=True (a segment's summary "
                         "pools its later tokens too, so only strictly earlier segments may be summarised)")
    return length // segment_length


def sqrt_segment_length(length: int) -> int:
    """The default segment length of the layers: the largest divisor of ``N`` up to ``ceil(sqrt(N))`` (the
    paper's ``s = sqrt(L)``, so that both the segment and the number of segments are about ``sqrt(N)``; 1 for a
    prime ``N``, where every token is its own segment)."""
    bound = math.isqrt(length - 1) + 1  # ceil(sqrt(N)) for N >= 1
    return max(d for d in range(1, bound + 1) if length % d == 0)


def direct_visible(q_idx: torch.Tensor, kv_idx: torch.Tensor, segment_length: int, is_causal: bool) -> torch.Tensor:
    """Query token ``q_idx`` sees key token ``kv_idx`` directly: same segment (and ``kv_idx <= q_idx`` causal)."""
    visible = q_idx // segment_length == kv_idx // segment_length
    return visible & (kv_idx <= q_idx) if is_causal else visible


def summary_visible(q_segment: torch.Tensor, kv_segment: torch.Tensor, is_causal: bool,
                    summarize_own_segment: bool) -> torch.Tensor:
    """A query of segment ``q_segment`` sees the summary of segment ``kv_segment``: strictly earlier (causal),
    another segment (bidirectional), any segment (bidirectional with ``summarize_own_segment``)."""
    if is_causal:
        return kv_segment < q_segment
    if summarize_own_segment:
        return torch.ones_like(kv_segment < q_segment)
    return kv_segment != q_segment
