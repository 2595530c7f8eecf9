"""Test specs of sliding-window attention, S²-Attn and SF-Attn: awkward cases, random cases, futures."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from attnzoo.testing import (
    Case,
    ErrorInput,
    OpTestSpec,
    bad_layer_option,
    case_future_mask,
    dropin_options,
    flag_error_inputs,
    int_error_inputs,
    qkv_inputs,
    register_spec,
    same_token_future,
    scale_error_inputs,
)


def _divisor(rnd: random.Random, length: int) -> int:
    return rnd.choice([g for g in range(1, length + 1) if length % g == 0])


def _random_sliding(rnd: random.Random) -> dict[str, Any]:
    """A random window, and each drop-in feature with probability 0.2 (grouped KV heads, longer keys, key
    padding, a boolean or additive mask, weights)."""
    length, causal = rnd.randint(1, 24), rnd.random() < 0.6
    kv_length = length + rnd.randint(1, 10) if rnd.random() < 0.2 else 0
    window = rnd.randint(1, length + 3)
    kv_heads = rnd.choice([1, 2])
    case = {"batch": rnd.randint(1, 3), "heads": kv_heads * rnd.randint(1, 3), "grid": (length,),
            "head_dim": rnd.randint(1, 9), "window": window if causal else window | 1, "is_causal": causal,
            "num_sink_tokens": rnd.randint(0, min(3, length)), "kv_length": kv_length,
            "kv_heads": kv_heads if rnd.random() < 0.2 else 0, "key_padding": rnd.random() < 0.2,
            "return_weights": rnd.random() < 0.2}
    if rnd.random() < 0.2:
        case.update(attn_mask=rnd.choice(["bool", "float"]), attn_mask_shape=rnd.choice(["full", "batch", "plain"]))
    return case


def _sliding_options(case: Case) -> dict[str, Any]:
    return {"window": case["window"], "is_causal": case.get("is_causal", True),
            "num_sink_tokens": case.get("num_sink_tokens", 0), **dropin_options(case)}


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
        # drop-in features (attnzoo.ops.dropin): grouped KV heads, a decode step and a prefill chunk against a
        # longer KV cache, key padding, boolean and additive masks of each shape, packed sequences, weights
        {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (63,), "head_dim": 8, "window": 9, "num_sink_tokens": 1},
        {"batch": 2, "heads": 4, "kv_heads": 1, "grid": (1,), "kv_length": 50, "head_dim": 8, "window": 16,
         "num_sink_tokens": 2},
        {"batch": 1, "heads": 2, "grid": (7,), "kv_length": 40, "head_dim": 8, "window": 9, "is_causal": False},
        {"batch": 3, "heads": 2, "grid": (40,), "head_dim": 8, "window": 7, "key_padding": True},
        {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "window": 5, "attn_mask": "bool"},
        {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "window": 11, "is_causal": False,
         "attn_mask": "float", "attn_mask_shape": "plain"},
        {"batch": 2, "heads": 3, "grid": (12,), "kv_length": 20, "head_dim": 4, "window": 6, "attn_mask": "bool",
         "attn_mask_shape": "batch", "key_padding": True},
        {"batch": 1, "heads": 2, "grid": (30,), "head_dim": 8, "window": 5, "num_sink_tokens": 2,
         "varlen": (10, 1, 19)},
        {"batch": 2, "heads": 2, "kv_heads": 1, "grid": (20,), "head_dim": 8, "window": 5, "return_weights": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (20,), "head_dim": 2, "window": 2, "num_sink_tokens": 1},
    make_inputs=qkv_inputs,
    options=_sliding_options,
    random_case=_random_sliding,
    future_mask=same_token_future(True),
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
        # drop-in features: grouped KV heads, key padding, masks and weights; longer keys and packed sequences
        # are declared by no implementation (checked to raise NotSupportedError)
        {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (24,), "head_dim": 8, "group_size": 6},
        {"batch": 3, "heads": 2, "grid": (24,), "head_dim": 8, "group_size": 8, "key_padding": True,
         "attn_mask": "float", "attn_mask_shape": "plain"},
        {"batch": 2, "heads": 2, "kv_heads": 1, "grid": (12,), "head_dim": 4, "group_size": 4,
         "attn_mask": "bool", "return_weights": True},
        {"batch": 1, "heads": 2, "grid": (8,), "kv_length": 16, "head_dim": 4, "group_size": 4},
        {"batch": 1, "heads": 2, "grid": (12,), "head_dim": 4, "group_size": 4, "varlen": (4, 8)},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (6,), "head_dim": 3, "group_size": 3},
    make_inputs=qkv_inputs,
    options=lambda case: {"group_size": case["group_size"], **dropin_options(case)},
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
        {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (24,), "head_dim": 8, "group_size": 6, "num_sink_tokens": 2},
        {"batch": 3, "heads": 2, "grid": (24,), "head_dim": 8, "group_size": 8, "num_sink_tokens": 1,
         "key_padding": True, "attn_mask": "bool", "attn_mask_shape": "batch", "return_weights": True},
        {"batch": 1, "heads": 2, "grid": (12,), "head_dim": 4, "group_size": 4, "num_sink_tokens": 1,
         "varlen": (4, 8)},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (8,), "head_dim": 3, "group_size": 4, "num_sink_tokens": 1},
    make_inputs=qkv_inputs,
    options=lambda case: {"group_size": case["group_size"], "num_sink_tokens": case["num_sink_tokens"],
                          **dropin_options(case)},
    random_case=_random_grouped(sinks=True),
    future_mask=case_future_mask(True),
    layer_input_shape=(2, 64, 32),
    error_inputs=[ErrorInput("group not dividing the length", ValueError, "group_size", options={"group_size": 2},
                             case={"batch": 1, "heads": 2, "grid": (63,), "head_dim": 8, "group_size": 21,
                                   "num_sink_tokens": 1}),
                  *scale_error_inputs(), *int_error_inputs("group_size", per_axis=True),
                  *int_error_inputs("num_sink_tokens", minimum=0, per_axis=True)],
))
