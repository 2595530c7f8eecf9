"""Test spec of DHVT's head-token attention: tokens plus one or more head tokens per head, value width apart."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.head_tokens.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k ``(B, H, N, D)``, v ``(B, H, N, Dv)`` and the head tokens' ``(B, H, M, ·)`` (``M`` = the case's
    ``head_tokens``, default ``H``; ``Dv`` = ``value_dim``, default ``D``)."""
    b, h, n, d = case["batch"], case["heads"], case["grid"][0], case["head_dim"]
    m, dv = case.get("head_tokens", h), case.get("value_dim", d)
    shapes = {"query": (b, h, n, d), "key": (b, h, n, d), "value": (b, h, n, dv),
              "head_query": (b, h, m, d), "head_key": (b, h, m, d), "head_value": (b, h, m, dv)}
    return {name: random_tensor(shape, dtype, device, generator) for name, shape in shapes.items()}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 4), "grid": (rnd.randint(1, 30),),
            "head_dim": rnd.randint(1, 9), "value_dim": rnd.randint(1, 9), "head_tokens": rnd.randint(1, 5)}


def _replace(name: str, change: Any) -> Any:
    return lambda inputs: {**inputs, name: change(inputs[name])}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "heads": 4, "grid": (17,), "head_dim": 8},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "value_dim": 7},
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8},
        {"batch": 1, "heads": 3, "grid": (300,), "head_dim": 16, "head_tokens": 5},
        {"batch": 2, "heads": 6, "grid": (65,), "head_dim": 1, "value_dim": 3, "head_tokens": 1},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (5,), "head_dim": 2, "head_tokens": 2},
    make_inputs=_inputs,
    random_case=_random_case,
    batched_inputs=("query", "key", "value", "head_query", "head_key", "head_value"),
    layer_input_shape=(2, 17, 32),
    error_inputs=[
        ErrorInput("head_query of another head dim", ValueError,
                   r"head_query has shape \(2, 4, 4, 3\); expected \(2, 4, 4, 8\)",
                   inputs=_replace("head_query", lambda t: t[..., :3])),
        ErrorInput("no head tokens", ValueError, r"head_query has shape \(2, 4, 0, 8\)",
                   inputs=_replace("head_query", lambda t: t[:, :, :0])),
        ErrorInput("head_key with fewer head tokens", ValueError,
                   r"head_key has shape \(2, 4, 2, 8\); expected head_query's 4 head tokens",
                   inputs=_replace("head_key", lambda t: t[:, :, :2])),
        ErrorInput("head_value of another batch", ValueError,
                   r"head_value has shape \(1, 4, 4, 8\); expected \(2, 4, 4, 8\)",
                   inputs=_replace("head_value", lambda t: t[:1])),
        ErrorInput("head_key in float32", TypeError, r"head_key.dtype=torch.float32; expected the query's dtype",
                   inputs=_replace("head_key", lambda t: t.float())),
        ErrorInput("head_value not a tensor", TypeError, r"head_value must be a torch.Tensor, got list",
                   inputs=_replace("head_value", lambda t: t.tolist())),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[
        bad_layer_option("class_token", "yes", expected=" a bool"),
        bad_layer_option("qkv_bias", 1, expected=" a bool"),
        bad_layer_option("scale", 0.0, ValueError, " a finite real number > 0"),
    ],
))
