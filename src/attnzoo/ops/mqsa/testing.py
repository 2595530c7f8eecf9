"""Test spec of multi-query self-attention: windows from 1 to longer than the sequence, fusion weights at both
ends, padded item sequences (left padding, as recommendation batches are laid out, and random holes)."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.mqsa.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    case_future_mask,
    int_error_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    b, h, n, d = case["batch"], case["heads"], case["length"], case["head_dim"]
    inputs = {name: random_tensor((b, h, n, d), dtype, device, generator) for name in ("query", "key", "value")}
    if case.get("key_padding"):
        inputs["key_padding_mask"] = (torch.rand(b, n, generator=generator) < 0.3).to(device)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"window": case.get("window", 3), "alpha": case.get("alpha", 0.5)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 24),
            "head_dim": rnd.randint(1, 9), "window": rnd.randint(1, 8),
            "alpha": rnd.choice([0.0, 0.5, 1.0, rnd.random()]), "key_padding": rnd.random() < 0.3}


def _bad_alpha() -> list[ErrorInput]:
    wrong_type = [bad_option("alpha", bad, expected=" a real number in [0, 1]") for bad in ("0.5", True, None)]
    out_of_range = [bad_option("alpha", bad, ValueError, " a real number in [0, 1]")
                    for bad in (-0.1, 1.5, float("nan"))]
    return wrong_type + out_of_range


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 1, "length": 1, "head_dim": 8},
        {"batch": 3, "heads": 2, "length": 63, "head_dim": 60, "window": 3},
        {"batch": 1, "heads": 2, "length": 300, "head_dim": 8, "window": 50},
        {"batch": 2, "heads": 1, "length": 17, "head_dim": 3, "window": 1},
        {"batch": 2, "heads": 3, "length": 17, "head_dim": 1, "window": 40, "alpha": 0.0},
        {"batch": 2, "heads": 2, "length": 20, "head_dim": 4, "window": 4, "alpha": 1.0},
        {"batch": 3, "heads": 2, "length": 40, "head_dim": 8, "window": 3, "key_padding": True},
        {"batch": 3, "heads": 1, "length": 12, "head_dim": 5, "window": 5, "alpha": 0.3, "key_padding": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "length": 6, "head_dim": 3, "window": 2, "alpha": 0.4},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(True),
    layer_input_shape=(2, 50, 32),
    error_inputs=[*int_error_inputs("window"), *_bad_alpha(), *scale_error_inputs(),
                  ErrorInput("key padding of the wrong shape", ValueError, "key_padding_mask has shape",
                             inputs=lambda x: {**x, "key_padding_mask": torch.zeros(1, dtype=torch.bool)})],
    layer_error_inputs=[bad_layer_option("window", 0, ValueError, " an int >= 1"),
                        bad_layer_option("alpha", 2, ValueError, " a real number in [0, 1]"),
                        bad_layer_option("qkv_bias", "no", expected=" a bool")],
))
