"""Test spec of DiffQKV attention: K and V head counts and dims of their own, top-k V fetch, the drop-in masks,
random cases, the causal future, and the bad inputs (head counts that do not divide, dims that do not match,
top_k out of range)."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    flag_error_inputs,
    int_error_inputs,
    qkv_inputs,
    random_lengths,
    random_tensor,
    register_spec,
    same_token_future,
    scale_error_inputs,
)


def diffqkv_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """:func:`attnzoo.testing.qkv_inputs` (query and the drop-in masks), with the key replaced by one of
    ``k_heads`` heads and the value by one of ``v_heads`` heads of ``value_dim`` (defaults: the query's)."""
    inputs = qkv_inputs(case, dtype, device, generator)
    b, h, d = case["batch"], case["heads"], case["head_dim"]
    nk = case.get("kv_length") or case["grid"][0]
    inputs["key"] = random_tensor((b, case.get("k_heads", h), nk, d), dtype, device, generator)
    inputs["value"] = random_tensor((b, case.get("v_heads", h), nk, case.get("value_dim", d)), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    options: dict[str, Any] = {"is_causal": case.get("is_causal", False)}
    for name in ("top_k", "return_weights"):
        if case.get(name):
            options[name] = case[name]
    return options


def _random_diffqkv(rnd: random.Random) -> dict[str, Any]:
    """A random shape with random divisor K and V head counts and a value dim of its own, causal or not, top-k
    with probability 0.4, each drop-in feature with probability 0.2."""
    heads = rnd.choice([1, 2, 4, 6])
    divisors = [d for d in range(1, heads + 1) if heads % d == 0]
    length = rnd.randint(1, 20)
    case = {"batch": rnd.randint(1, 3), "heads": heads, "k_heads": rnd.choice(divisors),
            "v_heads": rnd.choice(divisors), "grid": (length,), "head_dim": rnd.randint(1, 8),
            "value_dim": rnd.randint(1, 8), "is_causal": rnd.random() < 0.5,
            "kv_length": length + rnd.randint(1, 8) if rnd.random() < 0.2 else 0,
            "key_padding": rnd.random() < 0.2, "return_weights": rnd.random() < 0.2}
    if rnd.random() < 0.2:
        case.update(attn_mask=rnd.choice(["bool", "float"]), attn_mask_shape=rnd.choice(["full", "batch", "plain"]))
    elif rnd.random() < 0.15 and length > 1 and not case["kv_length"]:
        case["varlen"] = random_lengths(rnd, length)
        case["batch"] = 1
    if rnd.random() < 0.4:
        case["top_k"] = rnd.randint(1, case["kv_length"] or length)
    return case


CASES = [
    {"batch": 2, "heads": 4, "k_heads": 1, "v_heads": 2, "grid": (20,), "head_dim": 8, "value_dim": 6,
     "is_causal": True},
    # Sigma-1.5B's proportions (32 query, 4 K, 16 V heads) at 8 / 1 / 4
    {"batch": 2, "heads": 8, "k_heads": 1, "v_heads": 4, "grid": (63,), "head_dim": 16, "is_causal": True},
    {"batch": 1, "heads": 6, "k_heads": 3, "v_heads": 2, "grid": (33,), "head_dim": 5, "value_dim": 7},
    {"batch": 1, "heads": 4, "k_heads": 4, "v_heads": 1, "grid": (1,), "head_dim": 8, "is_causal": True},
    {"batch": 3, "heads": 2, "grid": (17,), "head_dim": 1, "is_causal": True},  # MHA
    {"batch": 2, "heads": 4, "k_heads": 2, "v_heads": 2, "grid": (300,), "head_dim": 8, "is_causal": True},  # GQA
    # selective V fetching
    {"batch": 2, "heads": 4, "k_heads": 1, "v_heads": 4, "grid": (40,), "head_dim": 8, "is_causal": True,
     "top_k": 5},
    {"batch": 1, "heads": 4, "k_heads": 2, "v_heads": 1, "grid": (30,), "head_dim": 4, "value_dim": 3, "top_k": 1},
    {"batch": 2, "heads": 4, "k_heads": 1, "v_heads": 2, "grid": (25,), "head_dim": 4, "top_k": 25},
    # drop-in features: a decode step and a prefill chunk against a longer cache, padding, masks, packing, weights
    {"batch": 2, "heads": 8, "k_heads": 2, "v_heads": 4, "grid": (1,), "kv_length": 50, "head_dim": 8,
     "is_causal": True, "top_k": 10},
    {"batch": 1, "heads": 4, "k_heads": 1, "v_heads": 2, "grid": (7,), "kv_length": 40, "head_dim": 8,
     "is_causal": True},
    {"batch": 3, "heads": 4, "k_heads": 2, "v_heads": 1, "grid": (30,), "head_dim": 8, "key_padding": True,
     "is_causal": True, "top_k": 4},
    {"batch": 2, "heads": 4, "k_heads": 1, "v_heads": 2, "grid": (30,), "head_dim": 8, "attn_mask": "bool",
     "top_k": 6},
    {"batch": 2, "heads": 4, "k_heads": 4, "v_heads": 2, "grid": (12,), "kv_length": 20, "head_dim": 4,
     "attn_mask": "float", "attn_mask_shape": "batch", "key_padding": True, "is_causal": True},
    {"batch": 1, "heads": 4, "k_heads": 2, "v_heads": 1, "grid": (30,), "head_dim": 8, "is_causal": True,
     "varlen": (10, 1, 19), "top_k": 3},
    {"batch": 2, "heads": 4, "k_heads": 1, "v_heads": 2, "grid": (20,), "head_dim": 8, "is_causal": True,
     "return_weights": True, "top_k": 5},
]


def _with(**shapes: tuple[int, ...]):
    """An ``inputs`` transform replacing the named inputs by random ones of the given shapes."""
    def change(inputs: Inputs) -> Inputs:
        return {**inputs, **{name: torch.randn(shape, dtype=inputs["query"].dtype) for name, shape in shapes.items()}}

    return change


ERROR_INPUTS = [
    *scale_error_inputs(), *flag_error_inputs("is_causal"), *int_error_inputs("top_k"),
    bad_option("top_k", 21, ValueError, " at most the number of keys Nk=20"),
    bad_option("top_k", -3, ValueError, " an int >= 1"),
    ErrorInput("3 key heads for 4 query heads", ValueError, r"key has 3 heads and the query 4; expected a divisor",
               inputs=_with(key=(2, 3, 20, 8))),
    ErrorInput("3 value heads for 4 query heads", ValueError,
               r"value has 3 heads and the query 4; expected a divisor", inputs=_with(value=(2, 3, 20, 6))),
    ErrorInput("8 key heads for 4 query heads", ValueError, r"key has 8 heads and the query 4",
               inputs=_with(key=(2, 8, 20, 8))),
    ErrorInput("key head dim 4 for query head dim 8", ValueError, r"key has shape \(2, 1, 20, 4\); expected batch 2 "
               r"and head dim 8", inputs=_with(key=(2, 1, 20, 4))),
    ErrorInput("value of 19 tokens for 20 keys", ValueError, r"value has shape \(2, 2, 19, 6\); expected batch 2 "
               r"and the key's 20 tokens", inputs=_with(value=(2, 2, 19, 6))),
]

register_spec(OpTestSpec(
    variant="diffqkv_attention",
    cases=CASES,
    tiny_case={"batch": 1, "heads": 2, "k_heads": 1, "v_heads": 2, "grid": (5,), "head_dim": 3, "value_dim": 2,
               "is_causal": True},  # every implementation runs it: no top_k (tests/test_diffqkv.py gradchecks that)
    make_inputs=diffqkv_inputs,
    options=_options,
    random_case=_random_diffqkv,
    future_mask=same_token_future(False),
    layer_input_shape=(2, 16, 32),
    error_inputs=ERROR_INPUTS,
    layer_error_inputs=[
        bad_layer_option("num_k_heads", 3, ValueError, " a divisor of num_heads=4"),
        bad_layer_option("num_v_heads", 3, ValueError, " a divisor of num_heads=4"),
        bad_layer_option("num_k_heads", 0, ValueError, " an int >= 1"),
        bad_layer_option("head_dim_k", 16, ValueError, " at most head_dim_v=8"),
        bad_layer_option("head_dim_v", 0, ValueError, " an int >= 1"),
        bad_layer_option("aug_q_dim", 0, ValueError, " an int >= 1"),
        bad_layer_option("top_k", 0, ValueError, " an int >= 1"),
        bad_layer_option("top_k", True, expected=" an int >= 1"),
        bad_layer_option("is_causal", "no", expected=" a bool"),
    ],
))
