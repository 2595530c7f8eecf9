"""Test spec of ECA: one channel to 60, kernels from 1 tap to longer than the channel axis, zero and circular
padding, odd and one-pixel feature maps."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from attnzoo.ops.eca.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    feature_map,
    flag_error_inputs,
    random_feature_map_case,
    random_tensor,
    register_spec,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    return {"x": feature_map(case, dtype, device, generator),
            "weight": random_tensor((case["kernel"],), dtype, device, generator)}


def _options(case: Case) -> dict[str, Any]:
    return {"circular": case.get("circular", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    case = random_feature_map_case(rnd)
    kernel = rnd.choice([1, 3, 5, 7, 9])
    circular = rnd.random() < 0.4 and (kernel - 1) // 2 <= case["channels"]
    return {**case, "kernel": kernel, "circular": circular}


def _weight(taps: int) -> Callable[[Inputs], Inputs]:
    """The inputs with ``taps`` zero taps as the weight."""
    return lambda x: {**x, "weight": x["weight"].new_zeros(taps)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "channels": 1, "grid": (1, 1), "kernel": 1},
        {"batch": 3, "channels": 60, "grid": (7, 9), "kernel": 5},
        {"batch": 2, "channels": 1, "grid": (5, 4), "kernel": 3},
        {"batch": 2, "channels": 4, "grid": (3, 1), "kernel": 9},
        {"batch": 1, "channels": 37, "grid": (63, 5), "kernel": 7, "circular": True},
        {"batch": 2, "channels": 3, "grid": (6, 6), "kernel": 7, "circular": True},
        {"batch": 2, "channels": 64, "grid": (21, 22), "kernel": 3},
    ],
    tiny_case={"batch": 2, "channels": 5, "grid": (3, 4), "kernel": 3, "circular": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("x",),
    layer_input_shape=(2, 64, 7, 9),
    benchmark_case={"batch": 1, "channels": 64, "grid": (56, 56), "kernel": 3},
    error_inputs=[
        ErrorInput("an even number of taps", ValueError, r"weight has shape \(4,\); expected \(k,\) with k odd",
                   inputs=_weight(4)),
        ErrorInput("a 2-D weight", ValueError, r"weight has shape \(1, 1\); expected \(k,\)",
                   inputs=lambda x: {**x, "weight": x["weight"][None]}),
        ErrorInput("circular padding wider than the channels", ValueError, "expected at most C=1",
                   options={"circular": True}, inputs=_weight(5), case={"batch": 1, "channels": 1, "grid": (2, 2),
                                                                         "kernel": 1}),
        ErrorInput("an empty feature map", ValueError, r"expected at least one channel and one pixel",
                   inputs=lambda x: {**x, "x": x["x"][:, :, :0]}),
        *flag_error_inputs("circular"),
    ],
    layer_error_inputs=[
        bad_layer_option("kernel_size", 4, ValueError, " an odd int >= 1"),
        bad_layer_option("kernel_size", 0, ValueError, " an odd int >= 1"),
        bad_layer_option("kernel_size", 3.0, expected=" an odd int >= 1"),
        bad_layer_option("gamma", 0, ValueError, " a finite real number > 0"),
        bad_layer_option("gamma", "2", expected=" a finite real number > 0"),
        bad_layer_option("circular", "no", expected=" a bool"),
        LayerErrorInput("circular padding wider than the channels", ValueError, "expected at most dim=3",
                        {"dim": 3, "kernel_size": 9, "circular": True}),
    ],
))
