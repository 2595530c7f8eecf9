"""The 1-D sliding-window family (arXiv 2406.05678, SinkLoRA, building on LongLoRA's S²-Attn; window attention as in
arXiv 2408.02615, LaMamba-Diff): public ops that validate, pick an implementation and run it.

All three ops take ``(B, H, N, D)`` query/key (value ``(B, H, N, Dv)``) and return ``(B, H, N, Dv)``::

    O_i = softmax(q_i K_{V(i)}ᵀ · scale) V_{V(i)}

where the visible set ``V(i)`` is the pattern's mask function (:mod:`attnzoo.ops.sliding_window.patterns`).
Implementations: ``reference`` (dense scores, explicit N x N mask, O(N^2)), ``tiled`` / ``grouped`` (CPU and
GPU, forward and backward, O(N · window) memory), ``flex`` (compiled FlexAttention; forward and backward on
CUDA, forward only on CPU). Verified: fast paths equal the reference forward and backward in float64 on
lengths 1, 63, 500; the limits listed in each op's docstring are tested in ``tests/test_sliding_window.py``.
"""

from __future__ import annotations

import torch

from attnzoo.ops.dropin import DropIn, check_dropin
from attnzoo.ops.sliding_window.patterns import (
    SequencePattern,
    ShiftedSparsePattern,
    SinkFocusedPattern,
    SlidingWindowPattern,
)
from attnzoo.registry import CallFacts, select_implementation
from attnzoo.validation import check_flag, check_scale, per_axis

LAYOUT = "(B, H, N, D)"


def check_window(window: int, is_causal: bool) -> int:
    """``window >= 1``; odd when bidirectional (a window centred on the query)."""
    check_flag("is_causal", is_causal)
    (window,) = per_axis(window, 1, "window")
    if not is_causal and window % 2 == 0:
        raise ValueError(f"window={window}: must be odd when is_causal=False (the window |i - j| <= window // 2 "
                         "is centred on the query)")
    return window


def check_sinks(num_sink_tokens: int, length: int) -> int:
    """``0 <= num_sink_tokens <= N``."""
    (num_sink_tokens,) = per_axis(num_sink_tokens, 1, "num_sink_tokens", minimum=0)
    if num_sink_tokens > length:
        raise ValueError(f"num_sink_tokens={num_sink_tokens}: expected at most the sequence length N={length}")
    return num_sink_tokens


def check_group_size(group_size: int, length: int) -> int:
    """``group_size >= 1`` dividing the sequence length."""
    (group_size,) = per_axis(group_size, 1, "group_size")
    if length % group_size:
        raise ValueError(f"group_size={group_size}: expected a divisor of the sequence length N={length} "
                         f"(N / group_size groups)")
    return group_size


def _run(variant: str, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: SequencePattern,
         causal: bool, scale: float | None, impl: str, dropin: DropIn
         ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Dispatch on the call's features; ``dropin`` (its validated drop-in options) goes to the implementation."""
    scale = check_scale("scale", scale, query.shape[-1] ** -0.5)
    implementation = select_implementation(variant, impl, CallFacts.of([query, key, value], causal=causal,
                                                                       features=dropin.features))
    if query.shape[0] == 0 or query.shape[1] == 0:
        out = query.new_zeros(*query.shape[:-1], value.shape[-1]) + (query.sum() + key.sum() + value.sum()) * 0
        weights = query.new_zeros(*query.shape[:-1], key.shape[2])
        return (out, weights) if dropin.return_weights else out
    return implementation.fn(query, key, value, pattern=pattern, scale=scale, dropin=dropin)


def sliding_window_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, window: int,
                             is_causal: bool = True, num_sink_tokens: int = 0, scale: float | None = None,
                             impl: str = "auto", *, attn_mask: torch.Tensor | None = None,
                             key_padding_mask: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                             enable_gqa: bool = False, dropout_p: float = 0.0,
                             return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sliding-window attention with optional global sink tokens (StreamingLLM / SinkLoRA).

    Causal: query ``i`` sees keys ``i - window < j <= i`` (Mistral: ``window`` keys including itself).
    Bidirectional: ``|i - j| <= window // 2`` with ``window`` odd, truncated (not shifted) at the borders.
    The first ``num_sink_tokens`` keys are visible to every query (causal: when ``j <= i``). ``impl``:
    ``"auto"``, ``"tiled"``, ``"flex"`` or ``"reference"``. Time O(N · (window + s) · D). Limits tested:
    causal ``window >= N`` is causal dense attention, bidirectional ``window >= 2N - 1`` is full attention.

    Drop-in options (:mod:`attnzoo.ops.dropin`: shapes and conventions): ``key``/``value`` may be longer than
    ``query`` (the queries are the last positions: a decode step against a KV cache) and have fewer heads with
    ``enable_gqa=True``; ``attn_mask``, ``key_padding_mask``, packed ``cu_seqlens`` (windows and sinks per
    sequence), ``dropout_p`` and ``return_weights`` (then ``(out, weights)`` is returned). Each implementation
    declares which it runs (``attnzoo list``): the reference all of them, the tiled kernel grouped KV heads.

    >>> import torch
    >>> q = torch.randn(1, 8, 1, 16)                      # one new token, 8 query heads
    >>> k = v = torch.randn(1, 2, 100, 16)                # its KV cache: 100 tokens, 2 KV heads
    >>> sliding_window_attention(q, k, v, window=32, enable_gqa=True).shape
    torch.Size([1, 8, 1, 16])
    """
    dropin = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                          return_weights=return_weights)
    length = key.shape[2]
    pattern = SlidingWindowPattern(length, check_window(window, is_causal), is_causal,
                                   check_sinks(num_sink_tokens, length))
    return _run("sliding_window_attention", query, key, value, pattern, is_causal, scale, impl, dropin)


def shifted_sparse_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, group_size: int,
                             scale: float | None = None, impl: str = "auto", *,
                             attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                             cu_seqlens: torch.Tensor | None = None,
                             enable_gqa: bool = False, dropout_p: float = 0.0,
                             return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """LongLoRA's shifted sparse attention (S²-Attn), as in the official ``forward_noflashattn``.

    The sequence is cut into ``N / group_size`` groups with causal attention inside each; heads
    ``h >= H // 2`` first roll the sequence by ``-(G // 2)`` and their output is rolled back by ``G // 2``.
    The official code rolls by ``-group_size // 2`` (Python floors: ``-ceil(G / 2)``) and back by
    ``group_size // 2``, which misaligns odd ``G`` by one token; we roll by ``G // 2`` both ways (identical
    for even ``G``, which every official config uses). The shifted heads' last group wraps around, so their
    first ``G // 2`` tokens see the last tokens of the sequence: S²-Attn is not causal in sequence order
    (LongLoRA's flash-attention path instead cuts that group in two, as SF-Attn does). ``impl``:
    ``"auto"``, ``"grouped"``, ``"flex"`` or ``"reference"``. Time O(N · G · D). Limits tested: the
    unshifted heads equal block-diagonal causal attention; ``G = N`` is causal attention on the unshifted
    heads and on the rolled sequence for the shifted ones.

    Drop-in options (:mod:`attnzoo.ops.dropin`): the reference takes ``attn_mask``, ``key_padding_mask``, grouped
    KV heads, ``dropout_p`` and ``return_weights``, the grouped kernel grouped KV heads; keys longer than the
    queries and packed ``cu_seqlens`` are declared by no implementation (the groups are positions of one
    sequence) and raise ``NotSupportedError``.
    """
    options = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                           return_weights=return_weights)
    length = query.shape[2]
    pattern = ShiftedSparsePattern(length, check_group_size(group_size, length), query.shape[1])
    return _run("shifted_sparse_attention", query, key, value, pattern, True, scale, impl, options)


def sink_focused_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, group_size: int,
                           num_sink_tokens: int = 4, scale: float | None = None, impl: str = "auto", *,
                           attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                           cu_seqlens: torch.Tensor | None = None,
                           enable_gqa: bool = False, dropout_p: float = 0.0,
                           return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SinkLoRA's SF-Attn: S²-Attn without wrap-around, plus global sink tokens.

    Heads ``h < H // 2``: causal attention in groups ``[jG, (j+1)G)``. Heads ``h >= H // 2``: causal
    attention in ``[0, G//2)``, ``[G//2 + jG, G//2 + (j+1)G)`` and ``[N - G + G//2, N)`` (the shifted groups
    with the wrap-around group cut back into its tail and head parts). Every query also sees the first
    ``num_sink_tokens`` tokens (StreamingLLM uses 4) when they are not in its future. The official SinkLoRA
    repository has no SF-Attn code (only LongLoRA's S²-Attn), so these semantics follow the paper's text
    ("segmentation and reassembly" plus global attention to sink tokens) and are not verified against code.
    ``impl``: ``"auto"``, ``"grouped"``, ``"flex"`` or ``"reference"``. Time O(N · (G + s) · D). Tested: the
    mask equals an explicit boolean mask built independently; the grouped path equals the reference. Drop-in
    options as :func:`shifted_sparse_attention`.
    """
    options = check_dropin(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           cu_seqlens=cu_seqlens, enable_gqa=enable_gqa, dropout_p=dropout_p,
                           return_weights=return_weights)
    length = query.shape[2]
    pattern = SinkFocusedPattern(length, check_group_size(group_size, length), query.shape[1],
                                 check_sinks(num_sink_tokens, length))
    return _run("sink_focused_attention", query, key, value, pattern, True, scale, impl, options)
