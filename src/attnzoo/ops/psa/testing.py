"""Test spec of polarized self-attention: both layouts, the three spatial softmaxes, with and without the paper's
LayerNorm and the official bottleneck; two channels (one per branch half) to 60, odd and one-pixel maps."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.psa.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    feature_map,
    random_tensor,
    register_spec,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    c = case["channels"]
    half, hidden = c // 2, case.get("hidden", 0)

    def conv(out: int, inp: int) -> torch.Tensor:
        return random_tensor((out, inp, 1, 1), dtype, device, generator) / inp ** 0.5

    def vector(n: int) -> torch.Tensor:
        return random_tensor((n,), dtype, device, generator)

    inputs = {"x": feature_map(case, dtype, device, generator), "channel_query": conv(1, c),
              "channel_value": conv(half, c), "channel_up": conv(c, hidden or half), "spatial_query": conv(half, c),
              "spatial_value": conv(half, c)}
    if case.get("up_bias"):
        inputs["channel_up_bias"] = vector(c)
    if case.get("norm"):
        inputs |= {"channel_norm_weight": vector(c), "channel_norm_bias": vector(c)}
    if hidden:
        inputs |= {"channel_hidden": conv(hidden, half), "channel_hidden_bias": vector(hidden),
                   "hidden_norm_weight": vector(hidden), "hidden_norm_bias": vector(hidden)}
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"layout": case.get("layout", "parallel"), "spatial_softmax": case.get("spatial_softmax", "channels")}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "channels": 2 * rnd.randint(1, 6),
            "grid": (rnd.randint(1, 9), rnd.randint(1, 9)), "layout": rnd.choice(["parallel", "sequential"]),
            "spatial_softmax": rnd.choice(["channels", "context", "value"]), "norm": rnd.random() < 0.5,
            "hidden": rnd.choice([0, 0, 1, 3]), "up_bias": rnd.random() < 0.5}


PAPER_P = {"norm": True}
OFFICIAL_S = {"layout": "sequential", "spatial_softmax": "value", "hidden": 2, "up_bias": True}

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "channels": 2, "grid": (1, 1), **PAPER_P},
        {"batch": 3, "channels": 60, "grid": (7, 9), **PAPER_P},
        {"batch": 2, "channels": 6, "grid": (63, 5), "layout": "sequential", "norm": True},
        {"batch": 2, "channels": 10, "grid": (9, 4), "spatial_softmax": "context"},
        {"batch": 2, "channels": 20, "grid": (5, 11), **OFFICIAL_S},
        {"batch": 1, "channels": 4, "grid": (2, 3), "layout": "parallel", "spatial_softmax": "value", "hidden": 1,
         "up_bias": True, "norm": True},
        {"batch": 2, "channels": 32, "grid": (21, 22), **PAPER_P},
    ],
    tiny_case={"batch": 1, "channels": 4, "grid": (3, 3), "layout": "sequential", "norm": True, "hidden": 1,
               "up_bias": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("x",),
    layer_input_shape=(2, 32, 7, 9),
    benchmark_case={"batch": 1, "channels": 64, "grid": (56, 56), **PAPER_P},
    error_inputs=[
        ErrorInput("an odd channel count", ValueError, r"C=5 channels; expected an even C",
                   case={"batch": 1, "channels": 5, "grid": (2, 2)}),
        ErrorInput("a value projection to other than C/2", ValueError,
                   r"channel_value has shape \(3, 2, 1, 1\); expected \(1, 2, 1, 1\)",
                   inputs=lambda x: {**x, "channel_value": x["channel_value"].new_zeros(3, 2, 1, 1)}),
        ErrorInput("a LayerNorm weight without its bias", ValueError, "give both",
                   inputs=lambda x: {k: v for k, v in x.items() if k != "channel_norm_bias"}),
        ErrorInput("a bottleneck without its LayerNorm", ValueError, "needs hidden_norm_weight",
                   inputs=lambda x: {k: v for k, v in x.items() if not k.startswith("hidden_norm")},
                   case={"batch": 1, "channels": 20, "grid": (2, 2), **OFFICIAL_S}),
        bad_option("layout", "serial", ValueError, " one of 'parallel', 'sequential'"),
        bad_option("spatial_softmax", "pixels", ValueError, " one of 'channels', 'context', 'value'"),
        bad_option("eps", 0, ValueError, " a finite real number > 0"),
    ],
    layer_error_inputs=[
        LayerErrorInput("an odd channel count", ValueError, r"dim=31: expected an even number", {"dim": 31}),
        LayerErrorInput("too few channels for the official bottleneck", ValueError, r"dim=6: .* needs dim >= 8",
                        {"dim": 6, "form": "official", "layout": "sequential"}),
        bad_layer_option("form", "code", ValueError, " one of 'paper', 'official'"),
        bad_layer_option("layout", "both", ValueError, " one of 'parallel', 'sequential'"),
    ],
))
