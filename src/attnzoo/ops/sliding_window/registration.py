"""Registry entries of the 1-D sliding-window family (arXiv 2406.05678): sliding window with sinks, S²-Attn,
SF-Attn."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from attnzoo.capabilities import (
    AUTOGRAD_ANY_FLOAT,
    CUSTOM_BACKWARD,
    DROP_IN,
    FLEX_COMPILED,
    NATIVE_CPU,
)
from attnzoo.fitting import largest_divisor
from attnzoo.layers.sliding_window import (
    ShiftedSparseAttention,
    SinkFocusedAttention,
    SlidingWindowAttention,
)
from attnzoo.ops.sliding_window.flex import sequence_flex
from attnzoo.ops.sliding_window.functional import (
    shifted_sparse_attention,
    sink_focused_attention,
    sliding_window_attention,
)
from attnzoo.ops.sliding_window.grouped import grouped_attention
from attnzoo.ops.sliding_window.native import sliding_window_native
from attnzoo.ops.sliding_window.reference import sequence_reference
from attnzoo.ops.sliding_window.tiled import sliding_window_tiled
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("SinkLoRA: Enhanced Efficiency and Chat Capabilities for Long-Context Large Language Models",
              2024, "2406.05678", 57)

_FLEX = Implementation("flex", sequence_flex, FLEX_COMPILED, "compiled FlexAttention with the shared mask")
_DROP_IN_REFERENCE = Implementation("reference", sequence_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | DROP_IN),
                                    "dense scores + explicit Nq x Nk mask (oracle); every drop-in feature")
_GROUPED_REFERENCE = Implementation("reference", sequence_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | DROP_IN
                                            - {"cross", "varlen"}),
                                    "dense scores + explicit N x N mask (oracle); masks, padding, GQA, weights")
_GROUPED = Implementation("grouped", grouped_attention,
                          replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features | {"gqa"}),
                          "roll half the heads, reshape into groups, masked GEMMs per group; O(N * G) memory")
_LAYER_DEFAULTS = {"dim": 32, "num_heads": 4}


def _fit_window(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """A window of ``extent`` keys, made odd (a centred window needs an odd size)."""
    return {"window": extent | 1}


def _fit_groups(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """Groups of the largest size up to ``extent`` that divides the sequence."""
    return {"group_size": largest_divisor(grid[0], extent)}


register(Variant(
    name="sliding_window_attention",
    family="local",
    paper=PAPER,
    layout=SEQUENCE,
    summary="1-D sliding window (causal Mistral-style or centred bidirectional) with optional global sink tokens",
    op=sliding_window_attention,
    implementations={
        "native": Implementation("native", sliding_window_native, replace(NATIVE_CPU, features=NATIVE_CPU.features
                                                                          - {"dilation", "bias"}),
                                 "fused C++ kernel: each query sees its window (+ sinks); O(N * (window + D))"),
        "tiled": Implementation("tiled", sliding_window_tiled,
                                replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features | {"gqa"}),
                                "query tiles x gathered key windows (+ sinks) as batched GEMMs; O(N * window) memory"),
        "flex": _FLEX,
        "reference": _DROP_IN_REFERENCE,
    },
    causal=True,
    layer=SlidingWindowAttention,
    layer_layout=TOKENS,
    layer_defaults={**_LAYER_DEFAULTS, "window": 16},
    compare_default=True,
    fit_options=_fit_window,
))

register(Variant(
    name="shifted_sparse_attention",
    family="local",
    paper=PAPER,
    layout=SEQUENCE,
    summary="LongLoRA S²-Attn: causal attention in groups of G, half the heads rolled by G/2 (wrap-around kept)",
    op=shifted_sparse_attention,
    implementations={"grouped": _GROUPED, "flex": _FLEX, "reference": _GROUPED_REFERENCE},
    causal=False,  # the shifted heads' wrap-around group sees the future: S²-Attn is not causal
    layer=ShiftedSparseAttention,
    layer_layout=TOKENS,
    layer_defaults={**_LAYER_DEFAULTS, "group_size": 16},
    fit_options=_fit_groups,
))

register(Variant(
    name="sink_focused_attention",
    family="local",
    paper=PAPER,
    layout=SEQUENCE,
    summary="SinkLoRA SF-Attn: S²-Attn groups reassembled without wrap-around, plus global sink tokens (causal)",
    op=sink_focused_attention,
    implementations={"grouped": _GROUPED, "flex": _FLEX, "reference": _GROUPED_REFERENCE},
    causal=True,
    layer=SinkFocusedAttention,
    layer_layout=TOKENS,
    layer_defaults={**_LAYER_DEFAULTS, "group_size": 16},
    fit_options=_fit_groups,
))
