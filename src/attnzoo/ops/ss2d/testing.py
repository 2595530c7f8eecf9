"""Test spec of the 2-D selective scan: one pixel to 20 x 25, state sizes 1 to 16, with and without softplus,
skip ``D`` and ``delta_bias``."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.ss2d.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    flag_error_inputs,
    random_tensor,
    register_spec,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x`` ``(B, H, W, E)``, ``delta`` ``(B, 4, H, W, E)`` (``|delta|`` without softplus, so ``Δ >= 0``),
    ``A = -exp(·)`` ``(4, E, N)``, ``B``, ``C`` ``(B, 4, H, W, N)`` and, if the case asks, ``D``, ``delta_bias``."""
    b, (height, width), e, n = case["batch"], case["grid"], case["channels"], case["d_state"]
    inputs = {"x": random_tensor((b, height, width, e), dtype, device, generator),
              "delta": random_tensor((b, 4, height, width, e), dtype, device, generator),
              "A": -random_tensor((4, e, n), dtype, device, generator).exp(),
              "B": random_tensor((b, 4, height, width, n), dtype, device, generator),
              "C": random_tensor((b, 4, height, width, n), dtype, device, generator)}
    if not case.get("softplus", True):
        inputs["delta"] = inputs["delta"].abs() * 0.5
    if case.get("skip", True):
        inputs["D"] = random_tensor((4, e), dtype, device, generator)
    if case.get("bias") and case.get("softplus", True):
        inputs["delta_bias"] = random_tensor((4, e), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"delta_softplus": case.get("softplus", True)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "grid": (rnd.randint(1, 7), rnd.randint(1, 7)), "channels": rnd.randint(1, 5),
            "d_state": rnd.randint(1, 4), "softplus": rnd.random() < 0.7, "skip": rnd.random() < 0.7,
            "bias": rnd.random() < 0.5}


CASE = {"batch": 2, "grid": (5, 7), "channels": 6, "d_state": 4, "bias": True}


def _grow(name: str, axis: int) -> Any:
    def change(inputs: Inputs) -> Inputs:
        t = inputs[name]
        return {**inputs, name: torch.cat([t, t.narrow(axis, 0, 1)], dim=axis)}

    return change


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        CASE,
        {"batch": 3, "grid": (8, 8), "channels": 60, "d_state": 16, "bias": True},
        {"batch": 1, "grid": (1, 1), "channels": 8, "d_state": 1},
        {"batch": 1, "grid": (1, 63), "channels": 4, "d_state": 3, "skip": False},
        {"batch": 2, "grid": (63, 1), "channels": 3, "d_state": 2, "softplus": False},
        {"batch": 1, "grid": (20, 25), "channels": 8, "d_state": 4, "bias": True},
        {"batch": 2, "grid": (9, 4), "channels": 5, "d_state": 1, "softplus": False, "skip": False},
    ],
    tiny_case={"batch": 1, "grid": (2, 3), "channels": 2, "d_state": 2, "bias": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("x", "delta", "B", "C"),
    layer_input_shape=(2, 7, 6, 32),
    error_inputs=[
        ErrorInput("a 3-D x", ValueError, r"x has shape \(2, 35, 6\) \(3-D\); expected 4-D \(B, H, W, E\)",
                   inputs=lambda i: {**i, "x": i["x"].flatten(1, 2)}),
        ErrorInput("an integer x", TypeError, r"x.dtype=torch.int64; expected a floating dtype",
                   inputs=lambda i: {**i, "x": i["x"].long()}),
        ErrorInput("delta of another width", ValueError, r"delta has shape \(2, 4, 5, 7, 7\); expected "
                   r"\(2, 4, 5, 7, 6\)", inputs=_grow("delta", 4)),
        ErrorInput("three directions", ValueError, r"delta has shape \(2, 3, 5, 7, 6\); expected \(2, 4, 5, 7, 6\)",
                   inputs=lambda i: {**i, "delta": i["delta"][:, :3]}),
        ErrorInput("A of 2 dims", ValueError, r"A has shape \(4, 6\); expected \(4, E, N\)",
                   inputs=lambda i: {**i, "A": i["A"][..., 0]}),
        ErrorInput("A for 5 directions", ValueError, r"A has shape \(5, 6, 4\); expected \(4, 6, 4\)",
                   inputs=_grow("A", 0)),
        ErrorInput("B of another state size", ValueError, r"B has shape \(2, 4, 5, 7, 5\); expected "
                   r"\(2, 4, 5, 7, 4\)", inputs=_grow("B", 4)),
        ErrorInput("C of another batch", ValueError, r"C has shape \(3, 4, 5, 7, 4\); expected \(2, 4, 5, 7, 4\)",
                   inputs=_grow("C", 0)),
        ErrorInput("D per channel only", ValueError, r"D has shape \(6,\); expected \(4, 6\)",
                   inputs=lambda i: {**i, "D": i["D"][0]}),
        ErrorInput("delta_bias of another dtype", TypeError, r"delta_bias.dtype=torch.float32; expected x's dtype "
                   r"torch.float64", inputs=lambda i: {**i, "delta_bias": i["delta_bias"].float()}),
        ErrorInput("unknown impl", ValueError, r"impl='fastest'", options={"impl": "fastest"}),
        *flag_error_inputs("delta_softplus"),
    ],
    layer_error_inputs=[
        bad_layer_option("d_state", 0, ValueError, " an int >= 1"),
        bad_layer_option("ssm_ratio", "2", expected=" a finite real number > 0"),
        bad_layer_option("ssm_ratio", 0.01, ValueError, " int(ssm_ratio · dim) >= 1"),
        bad_layer_option("d_conv", 2, ValueError, " an odd kernel size"),
        bad_layer_option("dt_rank", 0, ValueError, " an int >= 1"),
        bad_layer_option("act", "relu", ValueError, " one of"),
        bad_layer_option("conv_bias", "yes", expected=" a bool"),
    ],
))
