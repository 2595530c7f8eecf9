"""Test spec of ULSAM: one subspace to twelve (subspaces of one channel), odd and one-pixel maps, eval-mode
BatchNorm (training mode, which mixes the batch, is checked against the official code in tests/test_ulsam.py)."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.ulsam.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    feature_map,
    flag_error_inputs,
    random_tensor,
    register_spec,
)


def norm_inputs(prefix: str, channels: int, dtype: torch.dtype, device: str,
                generator: torch.Generator) -> Inputs:
    """A BatchNorm's ``{prefix}_norm_weight``, ``_norm_bias``, ``_running_mean`` (random) and ``_running_var``
    (in [0.5, 1.5])."""
    return {f"{prefix}_norm_weight": random_tensor((channels,), dtype, device, generator),
            f"{prefix}_norm_bias": random_tensor((channels,), dtype, device, generator),
            f"{prefix}_running_mean": random_tensor((channels,), dtype, device, generator),
            f"{prefix}_running_var": (0.5 + torch.rand(channels, generator=generator, dtype=torch.float64)).to(
                dtype=dtype, device=device)}


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    c, g = case["channels"], case["subspaces"]
    inputs = {"x": feature_map(case, dtype, device, generator),
              "dw_weight": random_tensor((c,), dtype, device, generator),
              "dw_bias": random_tensor((c,), dtype, device, generator)}
    inputs |= norm_inputs("dw", c, dtype, device, generator)
    inputs |= {"pw_weight": random_tensor((g, c // g), dtype, device, generator),
               "pw_bias": random_tensor((g,), dtype, device, generator)}
    return inputs | norm_inputs("pw", g, dtype, device, generator)


def _random_case(rnd: random.Random) -> dict[str, Any]:
    g = rnd.randint(1, 4)
    return {"batch": rnd.randint(1, 3), "channels": g * rnd.randint(1, 4), "subspaces": g,
            "grid": (rnd.randint(1, 9), rnd.randint(1, 9))}


def _pw_weight(shape: tuple[int, int]):  # noqa: ANN202
    return lambda x: {**x, "pw_weight": x["pw_weight"].new_zeros(shape)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "channels": 1, "subspaces": 1, "grid": (1, 1)},
        {"batch": 3, "channels": 60, "subspaces": 4, "grid": (7, 9)},
        {"batch": 2, "channels": 6, "subspaces": 3, "grid": (63, 5)},
        {"batch": 2, "channels": 12, "subspaces": 12, "grid": (3, 8)},
        {"batch": 1, "channels": 45, "subspaces": 5, "grid": (9, 2)},
        {"batch": 2, "channels": 64, "subspaces": 4, "grid": (21, 22)},
    ],
    tiny_case={"batch": 1, "channels": 4, "subspaces": 2, "grid": (3, 4)},
    make_inputs=_inputs,
    options=lambda case: {"training": False},
    random_case=_random_case,
    batched_inputs=("x",),
    layer_input_shape=(2, 64, 7, 9),
    benchmark_case={"batch": 1, "channels": 64, "subspaces": 4, "grid": (56, 56)},
    error_inputs=[
        ErrorInput("subspaces that do not split the channels", ValueError,
                   r"pw_weight has shape \(7, 8\); expected \(g, C / g\).*g dividing C=60", inputs=_pw_weight((7, 8)),
                   case={"batch": 1, "channels": 60, "subspaces": 4, "grid": (2, 3)}),
        ErrorInput("a 1-D pointwise weight", ValueError, r"pw_weight has shape \(1,\); expected \(g, C / g\)",
                   inputs=lambda x: {**x, "pw_weight": x["pw_weight"].flatten()}),
        ErrorInput("a norm of the wrong width", ValueError, r"pw_running_var has shape \(1,\); expected \(2,\)",
                   inputs=lambda x: {**x, "pw_running_var": x["pw_running_var"][:1]},
                   case={"batch": 1, "channels": 4, "subspaces": 2, "grid": (3, 4)}),
        bad_option("momentum", 1.5, ValueError, " a finite real number in [0, 1]"),
        bad_option("momentum", "0.9", expected=" a finite real number >= 0"),
        bad_option("eps", 0.0, ValueError, " a finite real number > 0"),
        *flag_error_inputs("training"),
    ],
    layer_error_inputs=[
        LayerErrorInput("subspaces that do not split the channels", ValueError,
                        "dim=64 must be divisible by num_subspaces=3", {"num_subspaces": 3}),
        bad_layer_option("num_subspaces", 0, ValueError, " an int >= 1"),
        bad_layer_option("num_subspaces", 2.0, expected=" an int >= 1"),
        bad_layer_option("momentum", -0.1, ValueError, " a finite real number >= 0"),
    ],
))
