"""Test spec of grouped-query attention: MHA, GQA and MQA head layouts of the softmax op with ``enable_gqa``, each
drop-in feature its implementations declare, random cases, the causal future."""

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
    dropin_options,
    qkv_inputs,
    random_lengths,
    register_spec,
    same_token_future,
)


def _random_gqa(rnd: random.Random) -> dict[str, Any]:
    """Random query heads over a random divisor of K/V heads (MHA, GQA or MQA), causal or not, key padding, longer
    keys, packing or weights each with probability 0.2."""
    kv_heads = rnd.choice([1, 2, 3])
    length = rnd.randint(2, 20)
    case = {"batch": rnd.randint(1, 3), "heads": kv_heads * rnd.choice([1, 2, 4]), "kv_heads": kv_heads,
            "grid": (length,), "head_dim": rnd.randint(1, 8), "is_causal": rnd.random() < 0.5,
            "key_padding": rnd.random() < 0.2, "return_weights": rnd.random() < 0.2}
    if rnd.random() < 0.2:
        case["kv_length"] = length + rnd.randint(1, 8)
    elif rnd.random() < 0.2:
        case.update(batch=1, varlen=random_lengths(rnd, length))
    return case


def _options(case: Case) -> dict[str, Any]:
    return {"is_causal": case.get("is_causal", False), **dropin_options(case)}


def _three_kv_heads(inputs: Inputs) -> Inputs:
    key, value = (torch.randn(2, 3, 20, 8, dtype=inputs["query"].dtype) for _ in range(2))
    return {**inputs, "key": key, "value": value}


CASES = [
    {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (20,), "head_dim": 8, "is_causal": True},  # GQA
    {"batch": 2, "heads": 8, "kv_heads": 1, "grid": (63,), "head_dim": 16, "is_causal": True},  # MQA
    {"batch": 1, "heads": 4, "grid": (33,), "head_dim": 8},  # MHA
    {"batch": 2, "heads": 6, "kv_heads": 3, "grid": (1,), "kv_length": 30, "head_dim": 8, "is_causal": True},
    {"batch": 3, "heads": 4, "kv_heads": 1, "grid": (25,), "head_dim": 4, "key_padding": True, "is_causal": True},
    {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (16,), "head_dim": 4, "attn_mask": "bool",
     "attn_mask_shape": "batch"},
    {"batch": 1, "heads": 4, "kv_heads": 2, "grid": (30,), "head_dim": 8, "is_causal": True, "varlen": (10, 1, 19)},
    {"batch": 2, "heads": 4, "kv_heads": 1, "grid": (12,), "head_dim": 8, "is_causal": True, "return_weights": True},
]

register_spec(OpTestSpec(
    variant="grouped_query_attention",
    cases=CASES,
    tiny_case={"batch": 1, "heads": 2, "kv_heads": 1, "grid": (6,), "head_dim": 4, "is_causal": True},
    make_inputs=qkv_inputs,
    options=_options,
    random_case=_random_gqa,
    future_mask=same_token_future(False),
    layer_input_shape=(2, 16, 32),
    error_inputs=[ErrorInput("3 K/V heads for 4 query heads", ValueError,
                             r"key has 3 heads and query 4; expected equal head counts, or enable_gqa=True with the "
                             r"query's heads a multiple", inputs=_three_kv_heads)],
    layer_error_inputs=[bad_layer_option("num_kv_heads", 3, ValueError, " a divisor of num_heads=4"),
                        bad_layer_option("num_kv_heads", 0, ValueError, " an int >= 1"),
                        bad_layer_option("dropout", "0.1", expected=" a finite real number"),
                        bad_layer_option("is_causal", "no", expected=" a bool")],
))
