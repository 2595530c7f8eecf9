"""Test spec of LKA: VAN's 5x5 / 7x7-dilation-3 kernels on maps smaller and larger than the 23-pixel receptive
field, other odd and rectangular kernels and dilations, with and without biases."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.lka.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    feature_map,
    int_error_inputs,
    random_feature_map_case,
    random_tensor,
    register_spec,
)


def _pair(k: int | tuple[int, int]) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else tuple(k)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    c = case["channels"]
    k1, k2 = _pair(case.get("kernel", 5)), _pair(case.get("dilated_kernel", 7))
    inputs = {"x": feature_map(case, dtype, device, generator),
              "dw_weight": random_tensor((c, 1, *k1), dtype, device, generator) / (k1[0] * k1[1]) ** 0.5,
              "dilated_weight": random_tensor((c, 1, *k2), dtype, device, generator) / (k2[0] * k2[1]) ** 0.5,
              "pw_weight": random_tensor((c, c, 1, 1), dtype, device, generator) / c ** 0.5}
    for name in ("dw_bias", "dilated_bias", "pw_bias"):
        inputs[name] = random_tensor((c,), dtype, device, generator) if case.get("bias", True) else None
    return {name: t for name, t in inputs.items() if t is not None}


def _options(case: Case) -> dict[str, Any]:
    return {"dilation": case.get("dilation", 3)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {**random_feature_map_case(rnd, max_side=12), "kernel": (rnd.choice([1, 3, 5]), rnd.choice([1, 3, 5])),
            "dilated_kernel": rnd.choice([1, 3, 7]), "dilation": rnd.randint(1, 3), "bias": rnd.random() < 0.7}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "channels": 1, "grid": (1, 1)},
        {"batch": 3, "channels": 60, "grid": (7, 9)},
        {"batch": 2, "channels": 3, "grid": (25, 23)},
        {"batch": 1, "channels": 8, "grid": (63, 5), "kernel": 3, "dilated_kernel": 5, "dilation": 2},
        {"batch": 2, "channels": 5, "grid": (6, 11), "kernel": (3, 5), "dilated_kernel": (5, 1), "dilation": 1,
         "bias": False},
        {"batch": 1, "channels": 32, "grid": (28, 28)},
    ],
    tiny_case={"batch": 1, "channels": 2, "grid": (4, 5), "kernel": 3, "dilated_kernel": 3, "dilation": 2},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("x",),
    layer_input_shape=(2, 32, 14, 14),
    benchmark_case={"batch": 1, "channels": 64, "grid": (56, 56)},
    error_inputs=[
        ErrorInput("an even depthwise kernel", ValueError, r"dw_weight has shape \(60, 1, 4, 4\); expected "
                   r"\(C, 1, kh, kw\) = \(60, 1, kh, kw\) with kh, kw odd",
                   inputs=lambda x: {**x, "dw_weight": x["dw_weight"].new_zeros(60, 1, 4, 4)},
                   case={"batch": 1, "channels": 60, "grid": (3, 3)}),
        ErrorInput("a dense (not depthwise) dilated kernel", ValueError, r"dilated_weight has shape \(1, 2, 7, 7\)",
                   inputs=lambda x: {**x, "dilated_weight": x["dilated_weight"].new_zeros(1, 2, 7, 7)}),
        ErrorInput("a pointwise weight of other channels", ValueError, r"pw_weight has shape \(2, 1, 1, 1\)",
                   inputs=lambda x: {**x, "pw_weight": x["pw_weight"].new_zeros(2, 1, 1, 1)}),
        ErrorInput("a bias of the wrong width", ValueError, r"pw_bias has shape \(2,\); expected \(1,\)",
                   inputs=lambda x: {**x, "pw_bias": x["pw_bias"].new_zeros(2)}),
        *int_error_inputs("dilation"),
    ],
    layer_error_inputs=[
        bad_layer_option("kernel_size", 4, ValueError, " an odd int >= 1"),
        bad_layer_option("dilated_kernel_size", 6, ValueError, " an odd int >= 1"),
        bad_layer_option("dilated_kernel_size", 7.0, expected=" an odd int >= 1"),
        bad_layer_option("dilation", 0, ValueError, " an int >= 1"),
    ],
))
