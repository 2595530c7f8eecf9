"""Test spec of BaseConv: filters from 1 tap to longer than the sequence, with and without activation/bias."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.base_conv.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, case_future_mask, \
    flag_error_inputs, random_tensor, register_spec


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    channels, taps = case["channels"], case["kernel"]
    inputs = {
        "x": random_tensor((case["batch"], case["length"], channels), dtype, device, generator),
        "kernel": random_tensor((channels, taps), dtype, device, generator) * taps ** -0.5,
        "proj_weight": random_tensor((channels, channels), dtype, device, generator) * channels ** -0.5,
        "proj_bias": random_tensor((channels,), dtype, device, generator),
    }
    if case.get("conv_bias"):
        inputs["conv_bias"] = random_tensor((channels,), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"use_act": case.get("use_act", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "length": rnd.randint(1, 24), "channels": rnd.randint(1, 6),
            "kernel": rnd.randint(1, 30), "use_act": rnd.random() < 0.5, "conv_bias": rnd.random() < 0.5}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "length": 1, "channels": 8, "kernel": 3, "conv_bias": True},
        {"batch": 3, "length": 63, "channels": 60, "kernel": 63, "use_act": True},
        {"batch": 1, "length": 500, "channels": 8, "kernel": 500},
        {"batch": 2, "length": 500, "channels": 60, "kernel": 3, "conv_bias": True, "use_act": True},
        {"batch": 1, "length": 63, "channels": 8, "kernel": 100},
    ],
    tiny_case={"batch": 1, "length": 5, "channels": 2, "kernel": 4, "conv_bias": True, "use_act": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(True),
    batched_inputs=("x",),
    layer_input_shape=(2, 64, 32),
    error_inputs=[ErrorInput("projection of the wrong shape", ValueError, "proj_weight has shape",
                             inputs=lambda x: {**x, "proj_weight": x["proj_weight"][:1]}),
                  *flag_error_inputs("use_act")],
    layer_error_inputs=[bad_layer_option("use_act", 1, expected=" a bool")],
))
