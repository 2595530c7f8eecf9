"""Test spec of full softmax attention: awkward cases, every drop-in feature, random cases, the causal future."""

from __future__ import annotations

import random
from typing import Any

from attnzoo.testing import (
    Case,
    OpTestSpec,
    bad_layer_option,
    dropin_options,
    flag_error_inputs,
    qkv_inputs,
    register_spec,
    same_token_future,
    scale_error_inputs,
)


def _random_softmax(rnd: random.Random) -> dict[str, Any]:
    """A random shape, causal or not, and each drop-in feature with probability 0.25 (grouped KV heads, longer
    keys, key padding, a boolean or additive mask of any allowed shape, weights)."""
    length = rnd.randint(1, 24)
    kv_heads = rnd.choice([1, 2])
    batch = rnd.randint(1, 3)
    case = {"batch": batch, "heads": kv_heads * rnd.randint(1, 3), "grid": (length,),
            "head_dim": rnd.randint(1, 9), "is_causal": rnd.random() < 0.5,
            "kv_length": length + rnd.randint(1, 10) if rnd.random() < 0.25 else 0,
            "kv_heads": kv_heads if rnd.random() < 0.25 else 0, "key_padding": rnd.random() < 0.25,
            "return_weights": rnd.random() < 0.25}
    if rnd.random() < 0.25:
        case.update(attn_mask=rnd.choice(["bool", "float"]), attn_mask_shape=rnd.choice(["full", "batch", "plain"]))
    return case


def _options(case: Case) -> dict[str, Any]:
    return {"is_causal": case.get("is_causal", False), **dropin_options(case)}


CASES = [
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8},
    {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "is_causal": True},
    {"batch": 1, "heads": 2, "grid": (300,), "head_dim": 8},
    {"batch": 2, "heads": 1, "grid": (1,), "head_dim": 3, "is_causal": True},
    {"batch": 2, "heads": 3, "grid": (17,), "head_dim": 1, "is_causal": True},
    # drop-in features (attnzoo.ops.dropin): grouped KV heads, a decode step and a prefill chunk against a longer
    # KV cache (causal, bottom-right), key padding, boolean and additive masks of each shape, packed sequences,
    # weights
    {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (63,), "head_dim": 8, "is_causal": True},
    {"batch": 2, "heads": 4, "kv_heads": 1, "grid": (1,), "kv_length": 50, "head_dim": 8, "is_causal": True},
    {"batch": 1, "heads": 2, "grid": (7,), "kv_length": 40, "head_dim": 8, "is_causal": True},
    {"batch": 1, "heads": 2, "grid": (7,), "kv_length": 40, "head_dim": 8},
    {"batch": 3, "heads": 2, "grid": (40,), "head_dim": 8, "key_padding": True},
    {"batch": 3, "heads": 2, "grid": (40,), "head_dim": 8, "key_padding": True, "is_causal": True},
    {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "attn_mask": "bool"},
    {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "attn_mask": "bool", "attn_mask_shape": "batch",
     "is_causal": True},
    {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "attn_mask": "bool", "attn_mask_shape": "plain"},
    {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "attn_mask": "float"},
    {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "attn_mask": "float", "attn_mask_shape": "plain",
     "is_causal": True},
    {"batch": 2, "heads": 3, "grid": (12,), "kv_length": 20, "head_dim": 4, "attn_mask": "float",
     "attn_mask_shape": "batch", "key_padding": True, "is_causal": True},
    {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (12,), "kv_length": 20, "head_dim": 4, "attn_mask": "bool",
     "attn_mask_shape": "batch", "key_padding": True},
    {"batch": 1, "heads": 2, "grid": (30,), "head_dim": 8, "is_causal": True, "varlen": (10, 1, 19)},
    {"batch": 1, "heads": 2, "grid": (30,), "head_dim": 8, "varlen": (10, 1, 19)},
    {"batch": 2, "heads": 2, "kv_heads": 1, "grid": (20,), "head_dim": 8, "is_causal": True,
     "return_weights": True},
]

register_spec(OpTestSpec(
    variant="softmax_attention",
    cases=CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (12,), "head_dim": 4, "is_causal": True},
    make_inputs=qkv_inputs,
    options=_options,
    random_case=_random_softmax,
    future_mask=same_token_future(False),
    layer_input_shape=(2, 64, 32),
    error_inputs=[*scale_error_inputs(), *flag_error_inputs("is_causal")],
    layer_error_inputs=[bad_layer_option("qkv_bias", "no", expected=" a bool"),
                        bad_layer_option("is_causal", "no", expected=" a bool")],
))
