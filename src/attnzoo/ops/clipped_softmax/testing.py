"""Test spec of clipped softmax attention: the softmax cases with the paper's stretch factors (BERT's γ = −0.025,
strong clipping γ = −0.1, ζ = 1.1 clipping the top, γ = 0, ζ = 1), cases spanning several query chunks (causal,
longer keys, masks, padding, grouped KV heads), the causal future and the bad stretch factors."""

from __future__ import annotations

import itertools
import random
from typing import Any

from attnzoo.ops.clipped_softmax.functional import VARIANT_NAME
from attnzoo.ops.softmax.testing import CASES as SOFTMAX_CASES
from attnzoo.ops.softmax.testing import _random_softmax
from attnzoo.testing import (
    Case,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    dropin_options,
    flag_error_inputs,
    qkv_inputs,
    register_spec,
    same_token_future,
    scale_error_inputs,
)

STRETCHES = [(-0.025, 1.0), (-0.1, 1.0), (0.0, 1.1), (-0.1, 1.1), (0.0, 1.0)]
"""(γ, ζ) pairs the cases cycle through: the paper's BERT default, strong clipping at 0, clipping at 1 only, both,
and plain softmax."""


def _options(case: Case) -> dict[str, Any]:
    return {"is_causal": case.get("is_causal", False), "gamma": case.get("gamma", -0.025),
            "zeta": case.get("zeta", 1.0), **dropin_options(case)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    """A random softmax case (shape, causal, each drop-in feature with probability 0.25) with random stretch
    factors γ in [-0.3, 0], ζ in [1, 1.2]."""
    return {**_random_softmax(rnd), "gamma": -0.3 * rnd.random(), "zeta": 1 + 0.2 * rnd.random()}


CHUNKED = [  # more than one chunk of 64 queries, the last one partial
    {"batch": 2, "heads": 2, "grid": (130,), "head_dim": 8, "is_causal": True},
    {"batch": 1, "heads": 2, "grid": (129,), "head_dim": 8},
    {"batch": 1, "heads": 2, "grid": (70,), "kv_length": 150, "head_dim": 8, "is_causal": True},
    {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (100,), "head_dim": 4, "is_causal": True, "key_padding": True},
    {"batch": 2, "heads": 2, "grid": (80,), "head_dim": 4, "attn_mask": "float", "attn_mask_shape": "plain",
     "is_causal": True},
    {"batch": 2, "heads": 2, "grid": (80,), "head_dim": 4, "attn_mask": "bool", "attn_mask_shape": "batch"},
    {"batch": 1, "heads": 3, "grid": (90,), "head_dim": 4, "attn_mask": "float"},
    {"batch": 1, "heads": 2, "grid": (65,), "head_dim": 8, "is_causal": True, "gamma": -0.5, "zeta": 1.5},
]

CASES = [{**case, "gamma": gamma, "zeta": zeta}
         for case, (gamma, zeta) in zip(SOFTMAX_CASES, itertools.cycle(STRETCHES))] + CHUNKED

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (12,), "head_dim": 4, "is_causal": True, "gamma": -0.1, "zeta": 1.1},
    make_inputs=qkv_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=same_token_future(False),
    layer_input_shape=(2, 64, 32),
    error_inputs=[
        *scale_error_inputs(), *flag_error_inputs("is_causal"),
        *(bad_option("gamma", bad, ValueError, " a finite real number <= 0") for bad in (0.01, 0.5)),
        *(bad_option("zeta", bad, ValueError, " a finite real number >= 1") for bad in (0.99, 0.5)),
        *(bad_option(name, bad, ValueError, " a finite real number")
          for name in ("gamma", "zeta") for bad in (float("nan"), float("inf"), float("-inf"))),
        *(bad_option(name, bad, expected=" a finite real number") for name in ("gamma", "zeta")
          for bad in ("-0.1", True, None)),
        bad_option("zeta", 0.5, ValueError, "", extra={"gamma": 1.0}),
    ],
    layer_error_inputs=[
        bad_layer_option("is_causal", "no", expected=" a bool"),
        bad_layer_option("gamma", 0.2, ValueError, " a finite real number <= 0"),
        bad_layer_option("zeta", 0.9, ValueError, " a finite real number >= 1"),
        bad_layer_option("gamma", float("nan"), ValueError, " a finite real number"),
        bad_layer_option("alpha", -1.0, ValueError, " a finite real number >= 0", extra={"gamma": None}),
        bad_layer_option("alpha", "12", expected=" a finite real number >= 0", extra={"gamma": None}),
    ],
))
