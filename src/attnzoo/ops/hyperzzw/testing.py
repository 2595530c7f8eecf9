"""Test spec of HyperZ·Z·W's context-dependent convolution: kernels from 1 to larger than the grid (the FFT's
regime), odd grids, channel counts that are not powers of two, one kernel per sample, and bad kernels."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.hyperzzw.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, random_tensor, register_spec


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x`` ``N(0, 1)``, ``kernel`` ``N(0, 1/k²)`` per sample and channel."""
    b, c, k = case["batch"], case["channels"], case["kernel"]
    return {"x": random_tensor((b, c, *case["grid"]), dtype, device, generator),
            "kernel": random_tensor((b, c, k, k), dtype, device, generator) / k}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "channels": rnd.randint(1, 9), "grid": (rnd.randint(1, 12), rnd.randint(1, 12)),
            "kernel": rnd.choice((1, 3, 5, 9, 17))}


def _replace(name: str, change: Any) -> Any:  # noqa: ANN401
    return lambda inputs: {**inputs, name: change(inputs[name])}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "channels": 24, "grid": (7, 9), "kernel": 3},
        {"batch": 1, "channels": 60, "grid": (21, 23), "kernel": 9},
        {"batch": 3, "channels": 5, "grid": (1, 1), "kernel": 5},
        {"batch": 2, "channels": 6, "grid": (16, 15), "kernel": 31},   # kernel larger than the grid
        {"batch": 1, "channels": 12, "grid": (32, 32), "kernel": 19},
        {"batch": 2, "channels": 3, "grid": (5, 12), "kernel": 1},
    ],
    tiny_case={"batch": 1, "channels": 2, "grid": (4, 5), "kernel": 3},
    make_inputs=_inputs,
    random_case=_random_case,
    batched_inputs=("x", "kernel"),
    layer_input_shape=(2, 12, 11, 13),
    benchmark_case={"batch": 1, "channels": 64, "grid": (56, 56), "kernel": 31},
    error_inputs=[
        ErrorInput("even kernel", ValueError, r"kernel has kernel size 2; expected an odd kernel size",
                   inputs=_replace("kernel", lambda t: t[..., :2, :2])),
        ErrorInput("one kernel for the batch", ValueError, r"kernel has shape \(1, 24, 3, 3\); expected "
                   r"\(2, 24, 3, 3\)", inputs=_replace("kernel", lambda t: t[:1])),
        ErrorInput("kernel (C, 1, k, k)", ValueError, r"kernel has shape \(24, 1, 3, 3\); expected \(2, 24, 3, 3\)",
                   inputs=_replace("kernel", lambda t: t[0, :, None])),
        ErrorInput("non-square kernel", ValueError, r"kernel has shape \(2, 24, 3, 1\); expected \(B, C, k, k\)",
                   inputs=_replace("kernel", lambda t: t[..., :1])),
        ErrorInput("kernel in float32", TypeError, r"kernel.dtype=torch.float32; expected x's dtype",
                   inputs=_replace("kernel", lambda t: t.float())),
        ErrorInput("unknown impl", ValueError, r"impl='fastest'", options={"impl": "fastest"}),
    ],
    layer_error_inputs=[
        bad_layer_option("kernel_size", 4, ValueError, " an odd int >= 1"),
        bad_layer_option("context", "global", ValueError, " one of 'batch', 'sample'"),
        bad_layer_option("omega_0", 0.0, ValueError, " a finite real number > 0"),
        bad_layer_option("num_layers", 0, ValueError, " an int >= 1"),
    ],
))
