"""Test spec of MHDLSA's dynamic depthwise filtering: kernels from 1x1 to wider than the grid, one to many groups
and channels, grids of one pixel, one row and odd sides, and the bad kernel sizes and weight shapes."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.dynamic_local.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    int_error_inputs,
    random_tensor,
    register_spec,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``value`` ``(B, G, X, Y, D)`` and ``weights`` ``(B, G, X, Y, k²)``, standard normal."""
    lead = (case["batch"], case["heads"], *case["grid"])
    return {"value": random_tensor((*lead, case["head_dim"]), dtype, device, generator),
            "weights": random_tensor((*lead, case["kernel_size"] ** 2), dtype, device, generator)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 9), rnd.randint(1, 9)),
            "head_dim": rnd.randint(1, 6), "kernel_size": rnd.choice([1, 3, 5, 7])}


def _with_weights(shape: tuple[int, ...]):  # noqa: ANN202
    return lambda inputs: {**inputs, "weights": torch.randn(shape, dtype=inputs["value"].dtype)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "heads": 8, "grid": (12, 10), "head_dim": 6, "kernel_size": 7},  # the official 48 channels
        {"batch": 1, "heads": 3, "grid": (9, 7), "head_dim": 60, "kernel_size": 3},
        {"batch": 1, "heads": 1, "grid": (1, 1), "head_dim": 8, "kernel_size": 7},
        {"batch": 2, "heads": 2, "grid": (1, 17), "head_dim": 8, "kernel_size": 5},
        {"batch": 1, "heads": 2, "grid": (5, 6), "head_dim": 4, "kernel_size": 13},  # wider than the grid
        {"batch": 1, "heads": 4, "grid": (8, 8), "head_dim": 3, "kernel_size": 1},
        {"batch": 1, "heads": 2, "grid": (25, 20), "head_dim": 8, "kernel_size": 7},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (3, 4), "head_dim": 2, "kernel_size": 3},
    make_inputs=_inputs,
    options=lambda case: {"kernel_size": case["kernel_size"]},
    random_case=_random_case,
    batched_inputs=("value", "weights"),
    layer_input_shape=(2, 8, 8, 32),
    # a super-resolution feature map: the official 48 channels (8 kernels of 6), 7x7 kernels, 64x64 pixels
    benchmark_case={"batch": 1, "heads": 8, "grid": (64, 64), "head_dim": 6, "kernel_size": 7},
    error_inputs=[
        *int_error_inputs("kernel_size"),
        bad_option("kernel_size", 4, ValueError, " an odd int >= 1"),
        ErrorInput("weights for another kernel size", ValueError,
                   r"weights has shape \(2, 8, 12, 10, 25\); expected \(B, G, X, Y, kernel_size²\) = "
                   r"\(2, 8, 12, 10, 49\)", inputs=_with_weights((2, 8, 12, 10, 25))),
        ErrorInput("weights per channel", ValueError, r"weights has shape \(2, 48, 12, 10, 49\)",
                   inputs=_with_weights((2, 48, 12, 10, 49))),
        ErrorInput("weights of another grid", ValueError, r"weights has shape \(2, 8, 10, 12, 49\)",
                   inputs=_with_weights((2, 8, 10, 12, 49))),
        ErrorInput("weights in float32", TypeError, r"dtypes differ",
                   inputs=lambda i: {**i, "weights": i["weights"].float()}),
        ErrorInput("value of rank 4", ValueError, r"value has shape \(2, 8, 12, 10\) \(4-D\); expected 5-D",
                   inputs=lambda i: {**i, "value": i["value"][..., 0]}),
        ErrorInput("integer value", TypeError, r"value.dtype=torch.int64",
                   inputs=lambda i: {**i, "value": i["value"].long()}),
    ],
    layer_error_inputs=[
        bad_layer_option("kernel_size", 6, ValueError, " an odd int >= 1"),
        bad_layer_option("kernel_size", 7.0, expected=" an int >= 1"),
        bad_layer_option("bias", 1, expected=" a bool"),
        bad_layer_option("dim", 2, ValueError, " at least 4 channels", extra={"num_heads": 1}),
    ],
))
