"""Registry entries of the 1-D sliding-window family (paper 57): sliding window with sinks, S²-Attn, SF-Attn."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from attnzoo.catalog.common import FLEX, REFERENCE, TILED, case_future_mask, qkv_inputs
from attnzoo.layers.sliding_window import ShiftedSparseAttention, SinkFocusedAttention, SlidingWindowAttention
from attnzoo.ops.sliding_window.flex import sequence_flex
from attnzoo.ops.sliding_window.functional import (
    LAYOUT,
    shifted_sparse_attention,
    sink_focused_attention,
    sliding_window_attention,
)
from attnzoo.ops.sliding_window.grouped import grouped_attention
from attnzoo.ops.sliding_window.reference import sequence_reference
from attnzoo.ops.sliding_window.tiled import sliding_window_tiled
from attnzoo.registry import Implementation, Paper, Variant, register

PAPER = Paper("SinkLoRA: Enhanced Efficiency and Chat Capabilities for Long-Context Large Language Models",
              2024, "2406.05678", 57)

_FLEX = Implementation("flex", sequence_flex, FLEX, "compiled FlexAttention with the shared mask")
_REFERENCE = Implementation("reference", sequence_reference, REFERENCE, "dense scores + explicit N x N mask (oracle)")
_GROUPED = Implementation("grouped", grouped_attention, TILED,
                          "roll half the heads, reshape into groups, masked GEMMs per group; O(N * G) memory")



def _divisor(rnd: random.Random, length: int) -> int:
    return rnd.choice([g for g in range(1, length + 1) if length % g == 0])


def _random_sliding(rnd: random.Random) -> dict[str, Any]:
    length, causal = rnd.randint(1, 24), rnd.random() < 0.6
    window = rnd.randint(1, length + 3)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (length,), "head_dim": rnd.randint(1, 9),
            "window": window if causal else window | 1, "is_causal": causal,
            "num_sink_tokens": rnd.randint(0, min(3, length))}


def _random_grouped(sinks: bool) -> Callable[[random.Random], dict[str, Any]]:
    def draw(rnd: random.Random) -> dict[str, Any]:
        length = rnd.randint(1, 24)
        case = {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 4), "grid": (length,),
                "head_dim": rnd.randint(1, 9), "group_size": _divisor(rnd, length)}
        return {**case, "num_sink_tokens": rnd.randint(0, min(4, length))} if sinks else case
    return draw


register(Variant(
    name="sliding_window_attention",
    family="local",
    paper=PAPER,
    layout=LAYOUT,
    summary="1-D sliding window (causal Mistral-style or centred bidirectional) with optional global sink tokens",
    op=sliding_window_attention,
    implementations={
        "tiled": Implementation("tiled", sliding_window_tiled, TILED,
                                "query tiles x gathered key windows (+ sinks) as batched GEMMs; O(N * window) memory"),
        "flex": _FLEX,
        "reference": _REFERENCE,
    },
    layer=SlidingWindowAttention,
    layer_layout="(B, N, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "window": 16},
    layer_input_shape=(2, 64, 32),
    cases=[
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "window": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "window": 7, "is_causal": False, "num_sink_tokens": 2},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "window": 37, "num_sink_tokens": 4},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "window": 61, "is_causal": False},
        {"batch": 2, "heads": 1, "grid": (63,), "head_dim": 8, "window": 100, "num_sink_tokens": 3},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (20,), "head_dim": 2, "window": 2, "num_sink_tokens": 1},
    make_inputs=qkv_inputs,
    options=lambda case: {"window": case["window"], "is_causal": case.get("is_causal", True),
                          "num_sink_tokens": case.get("num_sink_tokens", 0)},
    random_case=_random_sliding,
    future_mask=case_future_mask(True),
))

register(Variant(
    name="shifted_sparse_attention",
    family="local",
    paper=PAPER,
    layout=LAYOUT,
    summary="LongLoRA S²-Attn: causal attention in groups of G, half the heads rolled by G/2 (wrap-around kept)",
    op=shifted_sparse_attention,
    implementations={"grouped": _GROUPED, "flex": _FLEX, "reference": _REFERENCE},
    layer=ShiftedSparseAttention,
    layer_layout="(B, N, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "group_size": 16},
    layer_input_shape=(2, 64, 32),
    cases=[
        {"batch": 1, "heads": 2, "grid": (1,), "head_dim": 8, "group_size": 1},
        {"batch": 3, "heads": 3, "grid": (63,), "head_dim": 60, "group_size": 9},
        {"batch": 1, "heads": 4, "grid": (500,), "head_dim": 8, "group_size": 100},
        {"batch": 2, "heads": 1, "grid": (64,), "head_dim": 8, "group_size": 64},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (6,), "head_dim": 3, "group_size": 3},
    make_inputs=qkv_inputs,
    options=lambda case: {"group_size": case["group_size"]},
    random_case=_random_grouped(sinks=False),
    future_mask=None,  # the shifted heads' wrap-around group sees the future: S²-Attn is not causal
))

register(Variant(
    name="sink_focused_attention",
    family="local",
    paper=PAPER,
    layout=LAYOUT,
    summary="SinkLoRA SF-Attn: S²-Attn groups reassembled without wrap-around, plus global sink tokens (causal)",
    op=sink_focused_attention,
    implementations={"grouped": _GROUPED, "flex": _FLEX, "reference": _REFERENCE},
    layer=SinkFocusedAttention,
    layer_layout="(B, N, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "group_size": 16},
    layer_input_shape=(2, 64, 32),
    cases=[
        {"batch": 1, "heads": 2, "grid": (1,), "head_dim": 8, "group_size": 1, "num_sink_tokens": 1},
        {"batch": 3, "heads": 3, "grid": (63,), "head_dim": 60, "group_size": 21, "num_sink_tokens": 4},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "group_size": 50, "num_sink_tokens": 4},
        {"batch": 2, "heads": 4, "grid": (64,), "head_dim": 8, "group_size": 8, "num_sink_tokens": 0},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (8,), "head_dim": 3, "group_size": 4, "num_sink_tokens": 1},
    make_inputs=qkv_inputs,
    options=lambda case: {"group_size": case["group_size"], "num_sink_tokens": case["num_sink_tokens"]},
    random_case=_random_grouped(sinks=True),
    future_mask=case_future_mask(True),
))
