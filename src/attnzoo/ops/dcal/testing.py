"""Test spec of pair-wise cross-attention: awkward shapes, a distractor of another length, a duplicated pair, bad
distractors."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from attnzoo.ops.dcal.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    qkv_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """:func:`attnzoo.testing.qkv_inputs` and the distractor's ``key2`` / ``value2`` with ``distractor_length``
    tokens (default: the case's), or, with ``"duplicate": True``, copies of ``key`` / ``value``."""
    inputs = qkv_inputs(case, dtype, device, generator)
    if case.get("duplicate"):
        return {**inputs, "key2": inputs["key"].clone(), "value2": inputs["value"].clone()}
    b, h, _, d = inputs["key"].shape
    n2 = case.get("distractor_length") or inputs["key"].shape[2]
    return {**inputs, "key2": random_tensor((b, h, n2, d), dtype, device, generator),
            "value2": random_tensor((b, h, n2, d), dtype, device, generator)}


def _random(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 24),),
            "head_dim": rnd.randint(1, 9), "distractor_length": rnd.randint(1, 24),
            "duplicate": rnd.random() < 0.2}


def _set(**changes: Callable[[Inputs], Any]) -> Callable[[Inputs], Inputs]:
    return lambda inputs: {**inputs, **{name: change(inputs) for name, change in changes.items()}}


CASES = [
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8},
    {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60},
    {"batch": 1, "heads": 2, "grid": (197,), "head_dim": 8},
    {"batch": 2, "heads": 3, "grid": (17,), "head_dim": 1, "distractor_length": 1},
    {"batch": 2, "heads": 2, "grid": (10,), "head_dim": 8, "distractor_length": 50},
    {"batch": 2, "heads": 4, "grid": (33,), "head_dim": 16, "duplicate": True},
]

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (6,), "head_dim": 4, "distractor_length": 5},
    make_inputs=_inputs,
    random_case=_random,
    batched_inputs=("query", "key", "value", "key2", "value2"),
    layer_input_shape=(2, 65, 32),
    error_inputs=[
        *scale_error_inputs(),
        ErrorInput("key2 of another batch", ValueError, r"key2 has shape \(2, 1, 1, 8\); expected \(1, 1, 1, 8\)",
                   inputs=_set(key2=lambda i: torch.cat([i["key2"]] * 2))),
        ErrorInput("key2 of another head dim", ValueError, r"key2 has shape \(1, 1, 1, 4\); expected \(1, 1, 1, 8\)",
                   inputs=_set(key2=lambda i: i["key2"][..., :4])),
        ErrorInput("key2 with other heads", ValueError, r"key2 has shape \(3, 1, 63, 60\); expected \(3, 2, 63, 60\)",
                   inputs=_set(key2=lambda i: i["key2"][:, :1]), case=CASES[1]),
        ErrorInput("key2 3-D", ValueError, r"key2 has shape \(1, 1, 8\); expected the distractor's keys",
                   inputs=_set(key2=lambda i: i["key2"][0])),
        ErrorInput("key2 without tokens", ValueError, r"key2 has shape \(1, 1, 0, 8\); expected",
                   inputs=_set(key2=lambda i: i["key2"][:, :, :0])),
        ErrorInput("value2 of another length than key2", ValueError,
                   r"value2 has shape \(3, 2, 62, 60\); expected \(3, 2, 63, 60\)",
                   inputs=_set(value2=lambda i: i["value2"][:, :, 1:]), case=CASES[1]),
        ErrorInput("key2 in float32", TypeError, r"key2.dtype=torch.float32; expected the key's dtype",
                   inputs=_set(key2=lambda i: i["key2"].float())),
        ErrorInput("value2 in float32", TypeError, r"value2.dtype=torch.float32; expected the value's dtype",
                   inputs=_set(value2=lambda i: i["value2"].float())),
        ErrorInput("value2 not a tensor", TypeError, r"value2 must be a torch.Tensor, got list",
                   inputs=_set(value2=lambda i: [1.0])),
    ],
    layer_error_inputs=[bad_layer_option("qkv_bias", "no", expected=" a bool")],
))
