"""Test spec of SHViT's single-head attention: one head, query/key width apart from the value width."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.single_head.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``query``, ``key`` ``(batch, 1, length, head_dim)`` and ``value`` ``(batch, 1, length, value_dim)``
    (default ``head_dim``)."""
    b, n, d = case["batch"], case["grid"][0], case["head_dim"]
    return {"query": random_tensor((b, 1, n, d), dtype, device, generator),
            "key": random_tensor((b, 1, n, d), dtype, device, generator),
            "value": random_tensor((b, 1, n, case.get("value_dim", d)), dtype, device, generator)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "grid": (rnd.randint(1, 40),), "head_dim": rnd.randint(1, 20),
            "value_dim": rnd.randint(1, 20)}


def _two_heads(inputs: Inputs) -> Inputs:
    return {name: torch.cat([t, t], dim=1) for name, t in inputs.items()}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "grid": (49,), "head_dim": 16, "value_dim": 7},
        {"batch": 3, "grid": (63,), "head_dim": 16, "value_dim": 60},
        {"batch": 1, "grid": (1,), "head_dim": 8},
        {"batch": 1, "grid": (300,), "head_dim": 16, "value_dim": 96},
        {"batch": 2, "grid": (17,), "head_dim": 1, "value_dim": 3},
    ],
    tiny_case={"batch": 1, "grid": (6,), "head_dim": 4, "value_dim": 3},
    make_inputs=_inputs,
    random_case=_random_case,
    layer_input_shape=(2, 6, 5, 32),
    error_inputs=[
        ErrorInput("two heads", ValueError, r"query has shape \(2, 2, 49, 16\), 2 heads; expected one head",
                   inputs=_two_heads),
        ErrorInput("a 2-D grid", ValueError, r"query has shape \(2, 1, 7, 7, 16\) \(5-D\); expected 4-D",
                   inputs=lambda i: {n: t.unflatten(2, (7, 7)) for n, t in i.items()}),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[
        bad_layer_option("partial_ratio", 0.0, ValueError, " a finite real number > 0.0"),
        bad_layer_option("partial_ratio", -0.25, ValueError, " a finite real number > 0.0"),
        bad_layer_option("partial_ratio", "0.25", expected=" a finite real number > 0.0"),
        LayerErrorInput("partial_ratio=1.5", ValueError, r"partial_ratio=1.5: expected a fraction of the channels "
                        r"in \(0, 1\]", {"partial_ratio": 1.5}),
        LayerErrorInput("partial_ratio=0.01", ValueError, r"partial_ratio=0.01: attends round\(dim · partial_ratio\) "
                        r"= round\(32 · 0.01\) = 0 channels of dim=32; expected >= 1", {"partial_ratio": 0.01}),
        bad_layer_option("qk_dim", 0, ValueError, " an int >= 1"),
        bad_layer_option("qk_dim", 16.0, expected=" an int >= 1"),
        bad_layer_option("proj_norm_init", -1.0, ValueError, " a finite real number >= 0.0"),
    ],
))
