"""Test specs of position and channel attention (PAM / CAM): odd grids, channel counts that are not powers of two,
one pixel, one query/key channel, a nonzero γ (a zero γ would hide the attention), and bad weights."""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from attnzoo.ops.dual_attention.functional import CHANNEL_VARIANT, POSITION_VARIANT
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, random_tensor, register_spec


def _feature_map(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator,
                 scale: float = 1.0) -> torch.Tensor:
    return random_tensor((case["batch"], case["channels"], *case["grid"]), dtype, device, generator) * scale


def _position_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x`` ``N(0, 1)``; weights ``N(0, 1/C)`` (energies O(1)), biases and ``γ`` ``N(0, 1)``."""
    c, inner = case["channels"], case["inner"]
    x = _feature_map(case, dtype, device, generator)
    weights = {name: random_tensor(shape, dtype, device, generator) * c ** -0.5 for name, shape in
               (("query_weight", (inner, c)), ("key_weight", (inner, c)), ("value_weight", (c, c)))}
    inputs = {"x": x, **weights, "gamma": random_tensor((1,), dtype, device, generator)}
    if case.get("bias", True):
        inputs.update({name: random_tensor((size,), dtype, device, generator)
                       for name, size in (("query_bias", inner), ("key_bias", inner), ("value_bias", c))})
    return inputs


def _channel_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x`` ``N(0, 1/√N)`` so that the channel energies ``X Xᵀ`` are O(1); ``γ`` ``N(0, 1)``."""
    n = math.prod(case["grid"])
    x = _feature_map(case, dtype, device, generator, scale=n ** -0.25 * case.get("x_scale", 1.0))
    return {"x": x, "gamma": random_tensor((1,), dtype, device, generator)}


def _random_position(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "channels": rnd.randint(1, 12), "inner": rnd.randint(1, 4),
            "grid": (rnd.randint(1, 9), rnd.randint(1, 9)), "bias": rnd.random() < 0.7}


def _random_channel(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "channels": rnd.randint(1, 12), "grid": (rnd.randint(1, 9),
                                                                                 rnd.randint(1, 9))}


def _replace(name: str, change: Any) -> Any:  # noqa: ANN401
    return lambda inputs: {**inputs, name: change(inputs[name])}


POSITION_CASES = [
    {"batch": 2, "channels": 24, "inner": 3, "grid": (7, 9)},
    {"batch": 3, "channels": 8, "inner": 1, "grid": (1, 1)},      # one pixel: softmax of one key
    {"batch": 1, "channels": 60, "inner": 7, "grid": (21, 23)},   # C = 60 -> C // 8 = 7; N = 483
    {"batch": 2, "channels": 5, "inner": 2, "grid": (1, 13), "bias": False},
    {"batch": 1, "channels": 64, "inner": 8, "grid": (16, 15)},
]

register_spec(OpTestSpec(
    variant=POSITION_VARIANT,
    cases=POSITION_CASES,
    tiny_case={"batch": 1, "channels": 4, "inner": 1, "grid": (3, 3)},
    make_inputs=_position_inputs,
    random_case=_random_position,
    batched_inputs=("x",),
    layer_input_shape=(2, 16, 9, 11),
    benchmark_case={"batch": 1, "channels": 64, "inner": 8, "grid": (56, 56)},
    error_inputs=[
        ErrorInput("x of rank 3", ValueError, r"x has shape \(24, 7, 9\) \(3-D\); expected 4-D \(B, C, H, W\)",
                   inputs=_replace("x", lambda x: x[0])),
        ErrorInput("x with an empty grid", ValueError,
                   r"x has shape \(2, 24, 0, 9\); expected at least one channel and one pixel",
                   inputs=_replace("x", lambda x: x[:, :, :0])),
        ErrorInput("query_weight for other channels", ValueError,
                   r"query_weight has shape \(3, 23\); expected \(3, 24\)",
                   inputs=_replace("query_weight", lambda w: w[:, 1:])),
        ErrorInput("no query channels", ValueError, r"query_weight has shape \(0, 24\); expected \(C', C\) = "
                   r"\(C', 24\) with C' >= 1", inputs=lambda i: {**i, "query_weight": i["query_weight"][:0],
                                                                 "key_weight": i["key_weight"][:0]}),
        ErrorInput("key_weight of another width", ValueError, r"key_weight has shape \(2, 24\); expected \(3, 24\)",
                   inputs=_replace("key_weight", lambda w: w[1:])),
        ErrorInput("value_weight not square", ValueError, r"value_weight has shape \(12, 24\); expected \(24, 24\)",
                   inputs=_replace("value_weight", lambda w: w[::2])),
        ErrorInput("value_bias of the query width", ValueError, r"value_bias has shape \(3,\); expected \(24,\)",
                   inputs=lambda i: {**i, "value_bias": i["query_bias"]}),
        ErrorInput("gamma as a 0-d tensor", ValueError, r"gamma has shape \(\); expected \(1,\)",
                   inputs=_replace("gamma", lambda g: g[0])),
        ErrorInput("gamma a float", TypeError, r"gamma must be a torch.Tensor, got float",
                   inputs=lambda i: {**i, "gamma": 0.5}),
        ErrorInput("weights in float32", TypeError, r"query_weight.dtype=torch.float32; expected x's dtype",
                   inputs=_replace("query_weight", lambda w: w.float())),
        ErrorInput("integer x", TypeError, r"x.dtype=torch.int64; expected a floating dtype",
                   inputs=_replace("x", lambda x: x.long())),
        ErrorInput("unknown impl", ValueError, r"impl='fastest'", options={"impl": "fastest"}),
    ],
    layer_error_inputs=[
        bad_layer_option("reduction", 0, ValueError, " an int >= 1"),
        bad_layer_option("reduction", 2.0, expected=" an int >= 1"),
        bad_layer_option("gamma_init", "0", expected=" a finite real number"),
        bad_layer_option("gamma_init", float("nan"), ValueError, " a finite real number"),
    ],
))

register_spec(OpTestSpec(
    variant=CHANNEL_VARIANT,
    cases=[
        {"batch": 2, "channels": 24, "grid": (7, 9)},
        {"batch": 1, "channels": 60, "grid": (21, 23)},
        {"batch": 3, "channels": 1, "grid": (5, 4)},        # one channel: A = 1, out = γ x + x
        {"batch": 2, "channels": 7, "grid": (1, 1)},
        {"batch": 1, "channels": 33, "grid": (16, 15), "x_scale": 3.0},   # energies up to ~9: peaked rows
    ],
    tiny_case={"batch": 1, "channels": 5, "grid": (3, 4)},
    make_inputs=_channel_inputs,
    random_case=_random_channel,
    batched_inputs=("x",),
    layer_input_shape=(2, 16, 9, 11),
    benchmark_case={"batch": 1, "channels": 64, "grid": (56, 56)},
    error_inputs=[
        ErrorInput("x of rank 5", ValueError, r"x has shape \(1, 2, 24, 7, 9\) \(5-D\); expected 4-D",
                   inputs=_replace("x", lambda x: x[None])),
        ErrorInput("gamma of two values", ValueError, r"gamma has shape \(2,\); expected \(1,\)",
                   inputs=_replace("gamma", lambda g: g.repeat(2))),
        ErrorInput("gamma in float32", TypeError, r"gamma.dtype=torch.float32; expected x's dtype",
                   inputs=_replace("gamma", lambda g: g.float())),
        ErrorInput("unknown impl", ValueError, r"impl='fastest'", options={"impl": "fastest"}),
    ],
    layer_error_inputs=[
        bad_layer_option("gamma_init", float("inf"), ValueError, " a finite real number"),
    ],
))
