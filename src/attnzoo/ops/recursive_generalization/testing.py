"""Test spec of RG-SA's attention step: one representative, as many as queries, more than queries, value head
dims other than the query's (the official C/h against C'/h)."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.recursive_generalization.functional import VARIANT_NAME
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
    """Queries ``(B, H, N, D)`` on the case's ``grid``, ``representatives`` keys ``(B, H, M, D)`` and values
    ``(B, H, M, value_dim)`` (``value_dim`` defaults to ``2 D``, the official ``C/h`` for ``c_ratio = 0.5``)."""
    b, h, d = case["batch"], case["heads"], case["head_dim"]
    m, dv = case["representatives"], case.get("value_dim", 2 * d)
    return {"query": random_tensor((b, h, *case["grid"], d), dtype, device, generator),
            "key": random_tensor((b, h, m, d), dtype, device, generator),
            "value": random_tensor((b, h, m, dv), dtype, device, generator)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 40),),
            "head_dim": rnd.randint(1, 9), "representatives": rnd.randint(1, 20), "value_dim": rnd.randint(1, 9)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 2, "grid": (1,), "head_dim": 8, "representatives": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "representatives": 16},
        {"batch": 1, "heads": 3, "grid": (500,), "head_dim": 8, "representatives": 4},
        {"batch": 2, "heads": 1, "grid": (500,), "head_dim": 60, "representatives": 63, "value_dim": 60},
        {"batch": 2, "heads": 2, "grid": (10,), "head_dim": 4, "representatives": 30, "value_dim": 3},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (9,), "head_dim": 2, "representatives": 4, "value_dim": 3},
    make_inputs=_inputs,
    random_case=_random_case,
    layer_input_shape=(2, 10, 12, 32),
    benchmark_case={"batch": 1, "heads": 6, "grid": (64 * 64,), "head_dim": 15, "representatives": 16},
    error_inputs=[
        ErrorInput("no representatives", ValueError, r"key has shape \(1, 2, 0, 8\); expected the representative "
                   r"keys \(B, H, M, D\) = \(1, 2, M >= 1, 8\)",
                   inputs=lambda i: {**i, "key": i["key"][:, :, :0], "value": i["value"][:, :, :0]}),
        ErrorInput("values for other representatives", ValueError, r"value has shape \(1, 2, 2, 16\); expected "
                   r"\(1, 2, 1\)", inputs=lambda i: {**i, "value": torch.cat([i["value"]] * 2, dim=2)}),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[
        bad_layer_option("levels", -1, ValueError, " an int >= 0"),
        bad_layer_option("levels", 1.0, expected=" an int >= 0"),
        bad_layer_option("reduction", 1, ValueError, " an int >= 2"),
        bad_layer_option("c_ratio", 0.0, ValueError, " a finite real number > 0"),
        LayerErrorInput("c_ratio not splitting into the heads", ValueError, r"c_ratio=0.3: the reduced width "
                        r"int\(dim \* c_ratio\) = 9 must be a positive multiple of num_heads=4", {"c_ratio": 0.3}),
        LayerErrorInput("official rule with another reduction", ValueError, r"reduction=2: levels=None \(the "
                        r"official rule\) is defined for reduction=4", {"levels": None, "reduction": 2}),
    ],
))
