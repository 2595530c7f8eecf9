"""Combiner token mixers (arXiv 2107.05768): Combiner-Fixed and Combiner-Axial on ``(B, N, C)``.

Each layer is one ``qkv`` Linear, ``num_heads`` heads of ``C / num_heads`` channels, the functional op of
:mod:`attnzoo.ops.combiner` and an output projection (the official ``get_qkv`` + ``trail_dense``).
``segment_length=None`` (the default) takes, for each input, the largest divisor of its length ``N`` up to
``ceil(sqrt(N))`` (:func:`~attnzoo.ops.combiner.segments.sqrt_segment_length`; 8 at N = 64 or 128, 16 at 256), the
paper's ``s = sqrt(L)``; an explicit ``segment_length`` must divide every ``N`` the layer sees. No decoding cache:
a segment's summary needs the whole segment (call the layer on the whole sequence).
"""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.combiner.functional import combiner_axial_attention, combiner_fixed_attention
from attnzoo.ops.combiner.pooling import check_summary
from attnzoo.ops.combiner.segmented import row_attention_segmented
from attnzoo.ops.combiner.segments import check_segments, sqrt_segment_length
from attnzoo.validation import check_flag, check_optional_int, check_scale

AXIAL_ROW_SUMMARIES = ("none", "wsum", "proj", "wsum_proj")
"""Combiner-Axial's row-summary keys (official ``row_summary``): ``"none"`` the token's key, ``"wsum"`` the
row-attention average of the row's keys, ``"proj"`` (the official LM config's) a learned key of the row
attention output, ``"wsum_proj"`` a learned key of the ``"wsum"`` average (see :class:`CombinerAxialAttention`)."""


class _CombinerBase(ShowsOptions, nn.Module):
    """``qkv`` projection, heads, :meth:`attend`, output projection; the options every Combiner layer shares."""

    def __init__(self, dim: int, num_heads: int, segment_length: int | None, is_causal: bool,
                 summarize_own_segment: bool, qkv_bias: bool, scale: float | None, impl: str) -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, check_heads(dim, num_heads)
        self.segment_length = check_optional_int("segment_length", segment_length)
        self.is_causal = check_flag("is_causal", is_causal)
        self.summarize_own_segment = check_flag("summarize_own_segment", summarize_own_segment)
        if is_causal and summarize_own_segment:
            raise ValueError("summarize_own_segment=True: expected False with is_causal=True (a segment's summary "
                             "pools its later tokens too)")
        check_flag("qkv_bias", qkv_bias)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def segment_for(self, length: int) -> int:
        """The segment length used for an input of ``length`` tokens."""
        return sqrt_segment_length(length) if self.segment_length is None else self.segment_length

    def attend(self, x: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               segment_length: int) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        query, key, value = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        return self.proj(merge_heads(self.attend(x, query, key, value, self.segment_for(x.shape[1]))))


class CombinerAttention(_CombinerBase):
    """Combiner-Fixed layer (official ``sqrt_fixed_full``): each token attends its own segment directly and every
    other (causal: every earlier) segment through its pooled summary, one softmax over both
    (:func:`attnzoo.ops.combiner_fixed_attention`): ``(B, N, C) -> (B, N, C)``, time O(N (s + N/s) C).

    ``summary``: the pooling of the span queries and keys (default ``"identity-max"``, the official config's);
    ``summarize_own_segment=True`` (bidirectional only): the official non-causal code's extra summary of the own
    segment. Causal by default (a language-model mixer).
    """

    def __init__(self, dim: int, num_heads: int = 1, segment_length: int | None = None, is_causal: bool = True,
                 summary: str = "identity-max", summarize_own_segment: bool = False, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, segment_length, is_causal, summarize_own_segment, qkv_bias, scale, impl)
        self.summary = check_summary(summary)

    def attend(self, x: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               segment_length: int) -> torch.Tensor:
        return combiner_fixed_attention(query, key, value, segment_length, self.is_causal, self.summary,
                                        self.summarize_own_segment, self.scale, self.impl)


class CombinerAxialAttention(_CombinerBase):
    """Combiner-Axial layer (official ``axial_rowmajor``): the sequence as rows of ``s`` tokens; each token
    attends its row directly and, in its column, the row summaries of the other (causal: earlier) rows
    (:func:`attnzoo.ops.combiner_axial_attention`): ``(B, N, C) -> (B, N, C)``, time O(N (s + N/s) C).

    ``row_summary`` (:data:`AXIAL_ROW_SUMMARIES`): the key of each row summary. ``"proj"`` and ``"wsum_proj"``
    (official ``rowmajor_param_post``) map the bidirectional row attention's output (``"proj"``; the JAX
    ``_SelfAttAxialRowmajor``'s only form and the TF ``AxialRowMajorLM`` config's) or its average of the row's
    keys (``"wsum_proj"``), heads merged, through ``Linear(C, C)``, add the layer input, ``LayerNorm`` and
    ``Linear(C, C)`` to the summary keys; the op is then given them as ``summary_key`` (and computes the row
    attention again for the summary values: about a third more attention work than ``"none"``). Default
    ``"proj"``. Causal by default.
    """

    def __init__(self, dim: int, num_heads: int = 1, segment_length: int | None = None, is_causal: bool = True,
                 row_summary: str = "proj", summarize_own_segment: bool = False, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, segment_length, is_causal, summarize_own_segment, qkv_bias, scale, impl)
        if not isinstance(row_summary, str) or row_summary not in AXIAL_ROW_SUMMARIES:
            raise ValueError(f"row_summary={row_summary!r}: expected one of {AXIAL_ROW_SUMMARIES}")
        self.row_summary = row_summary
        if row_summary.endswith("proj"):
            self.summary_proj = nn.Linear(dim, dim, bias=qkv_bias)
            self.summary_norm = nn.LayerNorm(dim)
            self.summary_key = nn.Linear(dim, dim, bias=qkv_bias)

    def summary_keys(self, x: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     segment_length: int) -> torch.Tensor:
        """The learned row-summary keys ``(B, H, N, d)`` of ``"proj"`` / ``"wsum_proj"``."""
        scale = self.head_dim ** -0.5 if self.scale is None else self.scale
        rows = row_attention_segmented(query, key, key if self.row_summary == "wsum_proj" else value,
                                       segment_length=segment_length, scale=scale)
        summary = self.summary_norm(x + self.summary_proj(merge_heads(rows)))
        return split_heads(self.summary_key(summary), self.num_heads)

    def attend(self, x: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               segment_length: int) -> torch.Tensor:
        if self.row_summary.endswith("proj"):
            check_segments(segment_length, x.shape[1], self.is_causal, self.summarize_own_segment)
            keys = self.summary_keys(x, query, key, value, segment_length)
            return combiner_axial_attention(query, key, value, segment_length, self.is_causal, "none", keys,
                                            self.summarize_own_segment, self.scale, self.impl)
        return combiner_axial_attention(query, key, value, segment_length, self.is_causal, self.row_summary, None,
                                        self.summarize_own_segment, self.scale, self.impl)
