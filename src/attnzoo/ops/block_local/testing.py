"""Test spec of block-local attention: awkward lengths (partial last blocks, blocks longer than the sequence,
blocks of one), prefixes, a decode step and a prefill chunk against the keys of the current block, grouped K/V
heads, the reference's drop-in features; the causal future where no prefix makes it bidirectional."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.block_local.pattern import BlockLocalPattern
from attnzoo.testing import (
    Case,
    ErrorInput,
    OpTestSpec,
    bad_layer_option,
    dropin_options,
    int_error_inputs,
    qkv_inputs,
    register_spec,
    same_token_future,
    scale_error_inputs,
)

_FUTURE = same_token_future(True)


def _future(case: Case) -> torch.Tensor | None:
    """The causal future, or ``None`` where a prefix of more than one position is bidirectional."""
    pattern = BlockLocalPattern(case["grid"][0], case["block_size"], case.get("num_prefix_tokens", 0))
    return _FUTURE(case) if pattern.is_causal else None


def _options(case: Case) -> dict[str, Any]:
    return {"block_size": case["block_size"], "num_prefix_tokens": case.get("num_prefix_tokens", 0),
            **dropin_options(case)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    """A random length, block and prefix; grouped K/V heads, longer keys, key padding, a mask and the weights
    each with probability 0.2."""
    length = rnd.randint(1, 24)
    block = rnd.randint(1, length + 3)
    kv_heads = rnd.choice([1, 2])
    case = {"batch": rnd.randint(1, 3), "heads": kv_heads * rnd.randint(1, 3), "grid": (length,),
            "head_dim": rnd.randint(1, 9), "block_size": block,
            "num_prefix_tokens": rnd.randint(0, block) if rnd.random() < 0.3 else 0,
            "kv_length": length + rnd.randint(1, 10) if rnd.random() < 0.2 else 0,
            "kv_heads": kv_heads if rnd.random() < 0.2 else 0, "key_padding": rnd.random() < 0.2,
            "return_weights": rnd.random() < 0.2}
    if rnd.random() < 0.2:
        case.update(attn_mask=rnd.choice(["bool", "float"]), attn_mask_shape=rnd.choice(["full", "batch", "plain"]))
    return case


CASES = [
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "block_size": 1},
    {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "block_size": 5},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "block_size": 37},
    {"batch": 2, "heads": 1, "grid": (63,), "head_dim": 8, "block_size": 100},
    {"batch": 2, "heads": 3, "grid": (64,), "head_dim": 8, "block_size": 1},
    # the Block Transformer's token decoder: blocks of R + L_B - 1 = 5 positions, causal or with a 2-vector prefix
    {"batch": 2, "heads": 2, "grid": (40,), "head_dim": 8, "block_size": 5},
    {"batch": 2, "heads": 2, "grid": (43,), "head_dim": 8, "block_size": 5, "num_prefix_tokens": 2},
    {"batch": 1, "heads": 2, "grid": (63,), "head_dim": 8, "block_size": 9, "num_prefix_tokens": 9},
    # drop-in features: grouped K/V heads, a decode step and a prefill chunk against longer keys (bottom-right),
    # key padding, masks, packed sequences (blocks per sequence), weights (the reference runs those)
    {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (63,), "head_dim": 8, "block_size": 8},
    {"batch": 2, "heads": 4, "kv_heads": 1, "grid": (1,), "kv_length": 50, "head_dim": 8, "block_size": 16},
    {"batch": 1, "heads": 2, "grid": (7,), "kv_length": 40, "head_dim": 8, "block_size": 6},
    {"batch": 1, "heads": 2, "grid": (12,), "kv_length": 30, "head_dim": 8, "block_size": 5, "num_prefix_tokens": 3},
    {"batch": 3, "heads": 2, "grid": (40,), "head_dim": 8, "block_size": 7, "key_padding": True},
    {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "block_size": 6, "attn_mask": "bool"},
    {"batch": 2, "heads": 2, "grid": (30,), "head_dim": 8, "block_size": 6, "num_prefix_tokens": 2,
     "attn_mask": "float", "attn_mask_shape": "plain"},
    {"batch": 1, "heads": 2, "grid": (30,), "head_dim": 8, "block_size": 4, "varlen": (10, 1, 19)},
    {"batch": 2, "heads": 2, "kv_heads": 1, "grid": (20,), "head_dim": 8, "block_size": 6, "return_weights": True},
]

register_spec(OpTestSpec(
    variant="block_local_attention",
    cases=CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (11,), "head_dim": 3, "block_size": 4},
    make_inputs=qkv_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=_future,
    layer_input_shape=(2, 64, 32),
    # the token decoder of a 4096-token sequence (L_B = 4, R = 2): 1024 local sequences of S = 5 positions
    benchmark_case={"batch": 1, "heads": 4, "grid": (5120,), "head_dim": 64, "block_size": 5},
    error_inputs=[
        *int_error_inputs("block_size"),
        *int_error_inputs("num_prefix_tokens", minimum=0),
        ErrorInput("prefix longer than the block", ValueError,
                   r"num_prefix_tokens=6: expected at most block_size=5",
                   options={"block_size": 5, "num_prefix_tokens": 6}),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[
        bad_layer_option("is_causal", "no", expected=" a bool"),
        bad_layer_option("qkv_bias", "no", expected=" a bool"),
        bad_layer_option("block_size", 0, ValueError, " an int >= 1"),
        bad_layer_option("num_prefix_tokens", -1, ValueError, " an int >= 0"),
        bad_layer_option("num_prefix_tokens", 2, ValueError, " at most 1 with is_causal=True"),
        bad_layer_option("num_prefix_tokens", 17, ValueError, " at most block_size=16", extra={"is_causal": False}),
    ],
))
