"""Test spec of the SSMA fusion: modalities of different widths, odd grids, gate bottlenecks of one channel,
kernels 1 and 3 (and 5), with and without biases, and bad weights."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.ssma.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    random_tensor,
    register_spec,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x``, ``y`` ``N(0, 1)``; weights ``N(0, 1/fan_in)``; biases ``N(0, 1)``; the batch norm's affine
    ``N(1, 0.1²)`` / ``N(0, 1)``, running mean ``N(0, 0.1²)`` and variance in (0.5, 1.5)."""
    b, cx, cy, hidden, out = case["batch"], case["channels"], case["y_channels"], case["hidden"], case["out"]
    k, kf = case.get("kernel", 3), case.get("fuse_kernel", 1)
    c = cx + cy

    def weight(shape: tuple[int, ...]) -> torch.Tensor:
        fan_in = shape[1] * shape[2] * shape[3]
        return random_tensor(shape, dtype, device, generator) / fan_in ** 0.5

    inputs = {"x": random_tensor((b, cx, *case["grid"]), dtype, device, generator),
              "y": random_tensor((b, cy, *case["grid"]), dtype, device, generator),
              "reduce_weight": weight((hidden, c, k, k)), "expand_weight": weight((c, hidden, k, k)),
              "fuse_weight": weight((out, c, kf, kf)),
              "norm_weight": 1 + 0.1 * random_tensor((out,), dtype, device, generator),
              "norm_bias": random_tensor((out,), dtype, device, generator),
              "running_mean": 0.1 * random_tensor((out,), dtype, device, generator),
              "running_var": (0.5 + torch.rand(out, generator=generator, dtype=torch.float64)).to(dtype=dtype,
                                                                                                    device=device)}
    if case.get("bias", True):
        inputs.update({name: random_tensor((size,), dtype, device, generator) for name, size in
                       (("reduce_bias", hidden), ("expand_bias", c), ("fuse_bias", out))})
    return inputs


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "channels": rnd.randint(1, 8), "y_channels": rnd.randint(1, 8),
            "hidden": rnd.randint(1, 4), "out": rnd.randint(1, 8), "grid": (rnd.randint(1, 8), rnd.randint(1, 8)),
            "kernel": rnd.choice((1, 3)), "fuse_kernel": rnd.choice((1, 1, 3)), "bias": rnd.random() < 0.7}


def _replace(name: str, change: Any) -> Any:  # noqa: ANN401
    return lambda inputs: {**inputs, name: change(inputs[name])}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "channels": 24, "y_channels": 24, "hidden": 3, "out": 24, "grid": (7, 9)},
        {"batch": 3, "channels": 3, "y_channels": 1, "hidden": 1, "out": 2, "grid": (1, 1), "bias": False},
        {"batch": 1, "channels": 60, "y_channels": 20, "hidden": 5, "out": 40, "grid": (13, 15)},
        {"batch": 2, "channels": 7, "y_channels": 9, "hidden": 2, "out": 5, "grid": (1, 12), "kernel": 5,
         "fuse_kernel": 3},
    ],
    tiny_case={"batch": 1, "channels": 2, "y_channels": 2, "hidden": 1, "out": 2, "grid": (3, 3)},
    make_inputs=_inputs,
    random_case=_random_case,
    batched_inputs=("x", "y"),
    layer_input_shape=(2, 32, 9, 11),
    benchmark_case={"batch": 1, "channels": 64, "y_channels": 64, "hidden": 8, "out": 64, "grid": (56, 56)},
    error_inputs=[
        ErrorInput("y of another grid", ValueError, r"y has shape \(2, 24, 6, 9\); expected x's batch and grid "
                   r"\(2, C, 7, 9\)", inputs=_replace("y", lambda y: y[:, :, 1:])),
        ErrorInput("y of another batch", ValueError, r"y has shape \(1, 24, 7, 9\); expected x's batch and grid",
                   inputs=_replace("y", lambda y: y[:1])),
        ErrorInput("y in float32", TypeError, r"y.dtype=torch.float32; expected x's dtype",
                   inputs=_replace("y", lambda y: y.float())),
        ErrorInput("reduce_weight for x alone", ValueError, r"reduce_weight has shape \(3, 24, 3, 3\); expected "
                   r"\(3, 48, 3, 3\)", inputs=_replace("reduce_weight", lambda w: w[:, :24])),
        ErrorInput("expand_weight of another width", ValueError, r"expand_weight has shape \(24, 3, 3, 3\); expected "
                   r"\(48, 3, k, k\)", inputs=_replace("expand_weight", lambda w: w[:24])),
        ErrorInput("even gate kernel", ValueError, r"reduce_weight has kernel size 2; expected an odd kernel size",
                   inputs=_replace("reduce_weight", lambda w: w[..., :2, :2])),
        ErrorInput("fuse_weight for x alone", ValueError, r"fuse_weight has shape \(24, 24, 1, 1\); expected "
                   r"\(24, 48, 1, 1\)", inputs=_replace("fuse_weight", lambda w: w[:, :24])),
        ErrorInput("fuse_bias of the wrong size", ValueError, r"fuse_bias has shape \(48,\); expected \(24,\)",
                   inputs=_replace("fuse_bias", lambda b: b.repeat(2))),
        ErrorInput("running_var for the input channels", ValueError, r"running_var has shape \(48,\); expected "
                   r"\(24,\)", inputs=lambda i: {**i, "running_var": i["expand_bias"]}),
        bad_option("training", 1, expected=" a bool"),
        bad_option("momentum", 1.5, ValueError, " a finite real number in [0, 1]"),
        bad_option("eps", 0.0, ValueError, " a finite real number > 0"),
        ErrorInput("unknown impl", ValueError, r"impl='fastest'", options={"impl": "fastest"}),
    ],
    layer_error_inputs=[
        bad_layer_option("kernel_size", 2, ValueError, " an odd int >= 1"),
        bad_layer_option("reduction", 0, ValueError, " an int >= 1"),
        bad_layer_option("dim_y", 0, ValueError, " an int >= 1"),
    ],
))
