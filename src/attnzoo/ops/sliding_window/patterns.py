"""The 1-D sliding-window family as mask functions: sliding window with sinks, S²-Attn, SF-Attn.

Each pattern is a hashable frozen dataclass whose :meth:`mask_mod` (FlexAttention signature
``(b, h, q_idx, kv_idx) -> bool``) is the single source of truth: the dense reference, the FlexAttention
block mask and the masks of the CPU fast paths are all evaluated from it (:mod:`attnzoo.masks`).
``mask_heads`` is ``None`` for head-independent patterns and the head count when the mask depends on ``h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from attnzoo.masks import MaskMod


def sliding_window_mask_mod(window: int, is_causal: bool, num_sink_tokens: int) -> MaskMod:
    """Causal: ``i - window < j <= i`` (Mistral); bidirectional: ``|i - j| <= window // 2``, truncated at the
    borders. The first ``num_sink_tokens`` keys are visible to every query (causal: only when ``j <= i``)."""
    half = window // 2

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        sink = kv_idx < num_sink_tokens
        if is_causal:
            return (kv_idx <= q_idx) & ((q_idx - kv_idx < window) | sink)
        return ((q_idx - kv_idx).abs() <= half) | sink

    return mask_mod


def shifted_sparse_mask_mod(length: int, group_size: int, num_heads: int) -> MaskMod:
    """LongLoRA S²-Attn: causal attention inside groups of ``group_size`` consecutive positions of the sequence
    rolled by ``-(group_size // 2)`` for heads ``h >= num_heads // 2`` (unrolled positions ``0..length-1``; the
    official ``-group_size // 2`` differs by one for odd ``G``, see :func:`shifted_sparse_attention`).

    In rolled coordinates ``r = (p - shift_h) mod length`` a key is visible when it is in the query's group
    (``r // G`` equal) and not later in the rolled order. The last rolled group of the shifted heads wraps:
    it holds the tail ``[length - G + shift, length)`` followed by the head ``[0, shift)``, so head tokens see
    tail tokens (their future), exactly as the official code does.
    """
    shift = group_size // 2

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        offset = (h >= num_heads // 2) * shift
        rolled_q, rolled_kv = (q_idx - offset) % length, (kv_idx - offset) % length
        return (rolled_q // group_size == rolled_kv // group_size) & (rolled_kv <= rolled_q)

    return mask_mod


def sink_focused_mask_mod(group_size: int, num_heads: int, num_sink_tokens: int) -> MaskMod:
    """SinkLoRA SF-Attn: causal attention inside groups plus global sink tokens, no wrap-around.

    Heads ``h < num_heads // 2``: groups ``[jG, (j+1)G)``. Heads ``h >= num_heads // 2``: groups
    ``[0, G//2)``, ``[G//2 + jG, G//2 + (j+1)G)`` and the partial tail ``[length - G + G//2, length)``: the
    S²-Attn wrap-around group cut back into its two halves (group index ``(p + G - G//2) // G``). Every
    query also sees the first ``num_sink_tokens`` keys; everything is causal (``j <= i``).
    """
    lead = group_size - group_size // 2

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        offset = (h >= num_heads // 2) * lead
        same_group = (q_idx + offset) // group_size == (kv_idx + offset) // group_size
        return (same_group | (kv_idx < num_sink_tokens)) & (kv_idx <= q_idx)

    return mask_mod


@dataclass(frozen=True)
class _SequencePattern:
    """A pattern on a 1-D sequence of ``length`` tokens."""

    length: int

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def num_tokens(self) -> int:
        return self.length


@dataclass(frozen=True)
class SlidingWindowPattern(_SequencePattern):
    """Sliding-window attention on a sequence of ``length`` tokens, with optional global sink tokens."""

    window: int
    is_causal: bool
    num_sink_tokens: int = 0

    @property
    def mask_heads(self) -> None:
        return None

    @property
    def span(self) -> int:
        """Most consecutive keys one query's window covers (sinks aside)."""
        return min(self.window if self.is_causal else 2 * (self.window // 2) + 1, self.length)

    def window_low(self, i: torch.Tensor) -> torch.Tensor:
        """First key of the window of query ``i`` before clamping at 0."""
        return i - (self.window - 1) if self.is_causal else i - self.window // 2

    def mask_mod(self) -> MaskMod:
        return sliding_window_mask_mod(self.window, self.is_causal, self.num_sink_tokens)


@dataclass(frozen=True)
class _HeadGroupedPattern(_SequencePattern):
    """Groups of ``group_size`` tokens whose placement depends on the head (``mask_heads`` = ``num_heads``)."""

    group_size: int
    num_heads: int

    @property
    def mask_heads(self) -> int:
        return self.num_heads


@dataclass(frozen=True)
class ShiftedSparsePattern(_HeadGroupedPattern):
    """LongLoRA S²-Attn on ``length`` tokens: groups of ``group_size``, half the heads shifted by ``G // 2``."""

    num_sink_tokens: ClassVar[int] = 0  # S²-Attn has no sink tokens

    def mask_mod(self) -> MaskMod:
        return shifted_sparse_mask_mod(self.length, self.group_size, self.num_heads)


@dataclass(frozen=True)
class SinkFocusedPattern(_HeadGroupedPattern):
    """SinkLoRA SF-Attn on ``length`` tokens: S²-Attn groups without wrap-around, plus global sink tokens."""

    num_sink_tokens: int

    def mask_mod(self) -> MaskMod:
        return sink_focused_mask_mod(self.group_size, self.num_heads, self.num_sink_tokens)


GroupedPattern = ShiftedSparsePattern | SinkFocusedPattern
SequencePattern = SlidingWindowPattern | GroupedPattern
