"""Test spec of SG-Former's hybrid-scale attention: one token to 500, global (one window) and windowed groups,
reductions per axis, with and without the significance output."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.hybrid_scale.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    flag_error_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)
from attnzoo.validation import per_axis


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``query`` on the case's grid, ``key`` and ``value`` (of ``value_dim``) on the grid reduced ``reduction``."""
    b, h, d = case["batch"], case["heads"], case["head_dim"]
    keys = tuple(n // s for n, s in zip(case["grid"], per_axis(case["reduction"], 2, "reduction")))
    return {"query": random_tensor((b, h, *case["grid"], d), dtype, device, generator),
            "key": random_tensor((b, h, *keys, d), dtype, device, generator),
            "value": random_tensor((b, h, *keys, case.get("value_dim", d)), dtype, device, generator)}


def _options(case: Case) -> dict[str, Any]:
    return {"reduction": case["reduction"], "window_size": case.get("window"),
            "return_significance": case.get("significance", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    reduction = (rnd.randint(1, 3), rnd.randint(1, 3))
    window = (rnd.randint(1, 3), rnd.randint(1, 3))
    windows = (rnd.randint(1, 2), rnd.randint(1, 2))
    grid = tuple(s * m * w for s, m, w in zip(reduction, window, windows))
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": grid, "head_dim": rnd.randint(1, 9),
            "value_dim": rnd.randint(1, 9), "reduction": reduction,
            "window": None if rnd.random() < 0.3 else tuple(m * (w if rnd.random() < 0.2 else 1) for m, w in
                                                             zip(window, windows)),
            "significance": rnd.random() < 0.6}


ERROR_CASE = {"batch": 1, "heads": 2, "grid": (8, 8), "head_dim": 4, "reduction": 2, "window": 2}

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 2, "grid": (1, 1), "head_dim": 8, "reduction": 1, "significance": True},
        {"batch": 3, "heads": 1, "grid": (9, 7), "head_dim": 60, "reduction": 1, "window": (3, 7),
         "significance": True},
        {"batch": 1, "heads": 2, "grid": (24, 21), "head_dim": 8, "reduction": 3, "significance": True},
        {"batch": 1, "heads": 2, "grid": (24, 20), "head_dim": 60, "value_dim": 7, "reduction": (2, 2),
         "window": (4, 5)},
        {"batch": 2, "heads": 3, "grid": (14, 14), "head_dim": 8, "reduction": 7, "window": 1, "significance": True},
        {"batch": 2, "heads": 2, "grid": (14, 14), "head_dim": 8, "reduction": 1, "window": 7, "significance": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (4, 2), "head_dim": 2, "reduction": 2, "window": 1},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    layer_input_shape=(2, 8, 8, 32),
    error_inputs=[
        ErrorInput("reduction not dividing the grid", ValueError, r"reduction=3: expected a divisor of the query "
                   r"grid", options={"reduction": 3}, case=ERROR_CASE),
        ErrorInput("zero reduction", ValueError, "reduction=0: every entry must be >= 1", options={"reduction": 0},
                   case=ERROR_CASE),
        ErrorInput("window not dividing the reduced grid", ValueError, r"window_size=3: expected a divisor of the "
                   r"reduced key grid \(4, 4\)", options={"window_size": 3}, case=ERROR_CASE),
        ErrorInput("keys at full resolution", ValueError, r"key has shape \(1, 2, 8, 8, 4\); expected .* "
                   r"\(1, 2, 4, 4, 4\)", inputs=lambda x: {**x, "key": x["query"]}, case=ERROR_CASE),
        *flag_error_inputs("return_significance", case=ERROR_CASE),
        *scale_error_inputs(case=ERROR_CASE),
    ],
    # the official stage-1 local branch (SG-Former-S: 56 x 56, 2 heads of 32, one per group, 7 x 7 windows)
    benchmark_case={"batch": 1, "heads": 1, "grid": (56, 56), "head_dim": 32, "reduction": 1, "window": 7,
                    "significance": True},
    layer_error_inputs=[
        bad_layer_option("sr_ratio", 2.0, expected=" an int or a sequence of 2 ints"),
        LayerErrorInput("window_size=0", ValueError, "window_size=0: every entry must be >= 1", {"window_size": 0}),
        LayerErrorInput("odd heads", ValueError, "num_heads=3: expected an even number", {"dim": 30, "num_heads": 3}),
    ],
))
