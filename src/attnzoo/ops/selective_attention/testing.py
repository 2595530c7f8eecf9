"""Test spec of SDANet's selective attention: one to four levels, odd grids, channel counts that are not powers
of two, kernels 1, 3 and 7, each branch alone and both, exact ties in the spatial max (identical channels)."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.selective_attention.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_option, random_tensor, register_spec


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x`` the ``levels`` concatenated along the channels, ``N(0, 1)`` (with ``"tied"``, every channel of a
    level equal: ties in the channel max), weights ``N(0, 1/fan_in)``, biases ``N(0, 1)``, the squeeze's batch norm
    affine ``N(1, 0.1²)`` / ``N(0, 1)``, running mean ``N(0, 0.1²)``, running variance in (0.5, 1.5)."""
    b, m, d, k = case["batch"], case["levels"], case["hidden"], case["kernel"]
    c = case["channels"] // m  # each level's channels; x holds the M levels
    levels = random_tensor((b, m, c, *case["grid"]), dtype, device, generator)
    if case.get("tied"):
        levels = levels[:, :, :1].expand(b, m, c, *case["grid"]).contiguous()
    inputs = {"x": levels.flatten(1, 2),
              "squeeze_weight": random_tensor((d, c), dtype, device, generator) / c ** 0.5,
              "norm_weight": 1 + 0.1 * random_tensor((d,), dtype, device, generator),
              "norm_bias": random_tensor((d,), dtype, device, generator),
              "running_mean": 0.1 * random_tensor((d,), dtype, device, generator),
              "running_var": (0.5 + torch.rand(d, generator=generator, dtype=torch.float64)).to(dtype=dtype,
                                                                                                  device=device),
              "excite_weight": random_tensor((m, c, d), dtype, device, generator) / d ** 0.5,
              "spatial_weight": random_tensor((m, 2, k, k), dtype, device, generator) / (2 * k * k) ** 0.5}
    if case.get("bias", True):
        inputs["excite_bias"] = random_tensor((m, c), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"branches": case.get("branches", "both")}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    levels = rnd.randint(1, 4)
    return {"batch": rnd.randint(1, 3), "levels": levels, "channels": levels * rnd.randint(1, 10),
            "hidden": rnd.randint(1, 5), "grid": (rnd.randint(1, 9), rnd.randint(1, 9)),
            "kernel": rnd.choice((1, 3, 7)), "bias": rnd.random() < 0.7,
            "branches": rnd.choice(("both", "both", "channel", "spatial"))}


def _replace(name: str, change: Any) -> Any:  # noqa: ANN401
    return lambda inputs: {**inputs, name: change(inputs[name])}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "levels": 2, "channels": 48, "hidden": 12, "grid": (7, 9), "kernel": 7},
        {"batch": 3, "levels": 1, "channels": 5, "hidden": 2, "grid": (1, 1), "kernel": 3, "bias": False},
        {"batch": 1, "levels": 3, "channels": 180, "hidden": 30, "grid": (15, 13), "kernel": 7, "branches": "spatial"},
        {"batch": 2, "levels": 4, "channels": 24, "hidden": 3, "grid": (5, 8), "kernel": 1, "branches": "channel"},
        {"batch": 1, "levels": 2, "channels": 18, "hidden": 4, "grid": (6, 7), "kernel": 3, "tied": True},
    ],
    tiny_case={"batch": 1, "levels": 2, "channels": 6, "hidden": 2, "grid": (3, 4), "kernel": 3},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("x",),
    layer_input_shape=(2, 32, 10, 12),
    benchmark_case={"batch": 1, "levels": 2, "channels": 64, "hidden": 16, "grid": (56, 56), "kernel": 7},
    error_inputs=[
        ErrorInput("x of rank 3", ValueError, r"x has shape \(2, 48, 7\) \(3-D\); expected 4-D \(B, C, H, W\)",
                   inputs=_replace("x", lambda t: t[..., 0])),
        ErrorInput("x with one level's channels", ValueError, r"x has shape \(2, 24, 7, 9\), 24 channels; expected "
                   r"M·C = 2·24 = 48", inputs=_replace("x", lambda t: t[:, :24])),
        ErrorInput("squeeze_weight for another width", ValueError, r"squeeze_weight has shape \(6, 24\); expected "
                   r"\(12, 24\)", inputs=_replace("squeeze_weight", lambda t: t[::2])),
        ErrorInput("running_mean for the channels", ValueError, r"running_mean has shape \(24,\); expected \(12,\)",
                   inputs=lambda i: {**i, "running_mean": i["excite_bias"][0]}),
        bad_option("training", "yes", expected=" a bool"),
        ErrorInput("excite_weight for one level", ValueError, r"x has shape \(2, 48, 7, 9\), 48 channels; expected "
                   r"M·C = 1·24 = 24", inputs=_replace("excite_weight", lambda t: t[:1])),
        ErrorInput("excite_weight of rank 2", ValueError, r"excite_weight has shape \(2, 24\); expected \(M, C, d\)",
                   inputs=_replace("excite_weight", lambda t: t[..., 0])),
        ErrorInput("excite_bias for other channels", ValueError, r"excite_bias has shape \(2, 12\); expected "
                   r"\(2, 24\)", inputs=_replace("excite_bias", lambda t: t[:, ::2])),
        ErrorInput("even spatial kernel", ValueError, r"spatial_weight has kernel size 6; expected an odd kernel",
                   inputs=_replace("spatial_weight", lambda t: t[..., :6, :6])),
        ErrorInput("spatial_weight on one pooled map", ValueError, r"spatial_weight has shape \(2, 1, 7, 7\); "
                   r"expected \(2, 2, 7, 7\)", inputs=_replace("spatial_weight", lambda t: t[:, :1])),
        bad_option("branches", "all", ValueError, " one of 'both', 'channel', 'spatial'"),
        ErrorInput("unknown impl", ValueError, r"impl='fastest'", options={"impl": "fastest"}),
    ],
))
