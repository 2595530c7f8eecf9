"""Test specs of sliding-window attention, S²-Attn and SF-Attn: awkward cases, random cases, futures."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from attnzoo.testing import ErrorInput, OpTestSpec, bad_layer_option, case_future_mask, flag_error_inputs, \
    int_error_inputs, qkv_inputs, register_spec, scale_error_inputs


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


register_spec(OpTestSpec(
    variant="sliding_window_attention",
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
    layer_input_shape=(2, 64, 32),
    error_inputs=[
        ErrorInput("zero window", ValueError, "window", options={"window": 0}),
        ErrorInput("negative sinks", ValueError, "num_sink_tokens", options={"num_sink_tokens": -1}),
        *scale_error_inputs(),
        *flag_error_inputs("is_causal"),
        *int_error_inputs("window", per_axis=True),
        *int_error_inputs("num_sink_tokens", minimum=0, per_axis=True),
    ],
    layer_error_inputs=[bad_layer_option("qkv_bias", "no", expected=" a bool"),
                        bad_layer_option("is_causal", "no", expected=" a bool")],
))

register_spec(OpTestSpec(
    variant="shifted_sparse_attention",
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
    layer_input_shape=(2, 64, 32),
    error_inputs=[ErrorInput("group not dividing the length", ValueError, "group_size", options={"group_size": 2},
                             case={"batch": 1, "heads": 2, "grid": (63,), "head_dim": 8, "group_size": 9}),
                  *scale_error_inputs(), *int_error_inputs("group_size", per_axis=True)],
))

register_spec(OpTestSpec(
    variant="sink_focused_attention",
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
    layer_input_shape=(2, 64, 32),
    error_inputs=[ErrorInput("group not dividing the length", ValueError, "group_size", options={"group_size": 2},
                             case={"batch": 1, "heads": 2, "grid": (63,), "head_dim": 8, "group_size": 21,
                                   "num_sink_tokens": 1}),
                  *scale_error_inputs(), *int_error_inputs("group_size", per_axis=True),
                  *int_error_inputs("num_sink_tokens", minimum=0, per_axis=True)],
))
