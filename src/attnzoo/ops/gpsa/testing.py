"""Test spec of GPSA: awkward grids (1 x 1, non-square, one row), gates from content to position, weights."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from attnzoo.ops.gpsa.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    flag_error_inputs,
    qkv_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k, v on the case's grid; ``pos_weight`` ``(H, 3)`` at ``pos_scale`` (default 0.5) and ``gate`` ``(H,)``
    at ``gate_scale`` (default 2: from mostly content to mostly position), plus ``gate_shift``."""
    inputs = qkv_inputs(case, dtype, device, generator)
    heads = case["heads"]
    inputs["pos_weight"] = random_tensor((heads, 3), dtype, device, generator) * case.get("pos_scale", 0.5)
    gate = random_tensor((heads,), dtype, device, generator) * case.get("gate_scale", 2.0)
    inputs["gate"] = gate + case.get("gate_shift", 0.0)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"return_weights": True} if case.get("return_weights") else {}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 4), "grid": (rnd.randint(1, 6), rnd.randint(1, 6)),
            "head_dim": rnd.randint(1, 9), "gate_shift": rnd.uniform(-3, 3), "return_weights": rnd.random() < 0.25}


def _bad(name: str, make: Callable[[Inputs], object]) -> Callable[[Inputs], Inputs]:
    """The inputs with ``name`` replaced by ``make(inputs)``."""
    return lambda inputs: {**inputs, name: make(inputs)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "heads": 4, "grid": (5, 5), "head_dim": 8},
        {"batch": 3, "heads": 2, "grid": (3, 7), "head_dim": 60},
        {"batch": 1, "heads": 1, "grid": (1, 1), "head_dim": 8},
        {"batch": 2, "heads": 3, "grid": (1, 9), "head_dim": 1, "gate_shift": -20.0},
        {"batch": 1, "heads": 9, "grid": (8, 6), "head_dim": 4, "gate_shift": 20.0, "pos_scale": 2.0},
        {"batch": 2, "heads": 2, "grid": (4, 4), "head_dim": 8, "return_weights": True},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (2, 3), "head_dim": 2},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    layer_input_shape=(2, 6, 5, 32),
    error_inputs=[
        ErrorInput("pos_weight of 2 channels", ValueError, r"pos_weight has shape \(4, 2\); expected \(4, 3\)",
                   inputs=_bad("pos_weight", lambda i: i["pos_weight"][:, :2])),
        ErrorInput("pos_weight of other heads", ValueError, r"pos_weight has shape \(3, 3\); expected \(4, 3\)",
                   inputs=_bad("pos_weight", lambda i: i["pos_weight"][:3])),
        ErrorInput("gate per head and query", ValueError, r"gate has shape \(4, 1\); expected \(4,\)",
                   inputs=_bad("gate", lambda i: i["gate"][:, None])),
        ErrorInput("gate in float32", TypeError, r"gate.dtype=torch.float32; expected the query's dtype",
                   inputs=_bad("gate", lambda i: i["gate"].float())),
        ErrorInput("gate a float", TypeError, r"gate must be a torch.Tensor, got float",
                   inputs=_bad("gate", lambda i: 1.0)),
        ErrorInput("key on another grid", ValueError, r"key has shape \(2, 4, 5, 4, 8\); expected the query's",
                   inputs=_bad("key", lambda i: i["key"][:, :, :, :4])),
        ErrorInput("a 1-D sequence", ValueError, r"query has shape \(2, 4, 25, 8\) \(4-D\); expected 5-D",
                   inputs=lambda i: {**i, **{n: i[n].flatten(2, 3) for n in ("query", "key", "value")}}),
        *scale_error_inputs(),
        *flag_error_inputs("return_weights"),
    ],
    layer_error_inputs=[
        bad_layer_option("locality_strength", -1.0, ValueError, " a finite real number >= 0.0"),
        bad_layer_option("locality_strength", "1", expected=" a finite real number >= 0.0"),
        bad_layer_option("use_local_init", 1, expected=" a bool"),
        bad_layer_option("qkv_bias", "no", expected=" a bool"),
    ],
))
