"""Test spec of the MEDUSA head: saliency maps larger, smaller and of the feature map's own size (odd sizes
included), several saliency channels, kernels 1, 3 and 7, with and without bias, and bad shapes."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.medusa.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, random_tensor, register_spec


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x`` ``N(0, 1)``, ``saliency`` uniform in (0, 1) (the body's sigmoid), weights ``N(0, 1/(Cs k²))``."""
    b, c, cs, k = case["batch"], case["channels"], case.get("saliency_channels", 1), case["kernel"]
    x = random_tensor((b, c, *case["grid"]), dtype, device, generator)
    saliency = torch.sigmoid(random_tensor((b, cs, *case["saliency_grid"]), torch.float64, "cpu", generator))
    inputs = {"x": x, "saliency": saliency.to(dtype=dtype, device=device),
              "weight": random_tensor((c, cs, k, k), dtype, device, generator) / (cs * k * k) ** 0.5}
    if case.get("bias", True):
        inputs["bias"] = random_tensor((c,), dtype, device, generator)
    return inputs


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "channels": rnd.randint(1, 9), "grid": (rnd.randint(1, 9), rnd.randint(1, 9)),
            "saliency_grid": (rnd.randint(1, 20), rnd.randint(1, 20)), "kernel": rnd.choice((1, 3, 5, 7)),
            "saliency_channels": rnd.choice((1, 1, 2)), "bias": rnd.random() < 0.7}


def _replace(name: str, change: Any) -> Any:  # noqa: ANN401
    return lambda inputs: {**inputs, name: change(inputs[name])}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "channels": 24, "grid": (7, 9), "saliency_grid": (32, 32), "kernel": 7},
        {"batch": 1, "channels": 60, "grid": (15, 13), "saliency_grid": (15, 13), "kernel": 7},
        {"batch": 3, "channels": 5, "grid": (11, 12), "saliency_grid": (4, 5), "kernel": 3, "bias": False},
        {"batch": 2, "channels": 8, "grid": (1, 1), "saliency_grid": (9, 7), "kernel": 7},
        {"batch": 1, "channels": 6, "grid": (5, 6), "saliency_grid": (1, 1), "kernel": 1,
         "saliency_channels": 3},
    ],
    tiny_case={"batch": 1, "channels": 2, "grid": (3, 4), "saliency_grid": (5, 5), "kernel": 3},
    make_inputs=_inputs,
    random_case=_random_case,
    batched_inputs=("x", "saliency"),
    layer_input_shape=(2, 16, 14, 14),
    benchmark_case={"batch": 1, "channels": 64, "grid": (56, 56), "saliency_grid": (224, 224), "kernel": 7},
    error_inputs=[
        ErrorInput("even kernel", ValueError, r"weight has kernel size 6; expected an odd kernel size",
                   inputs=_replace("weight", lambda w: w[..., :6, :6])),
        ErrorInput("weight for other channels", ValueError, r"weight has shape \(23, 1, 7, 7\); expected "
                   r"\(24, 1, 7, 7\)", inputs=_replace("weight", lambda w: w[1:])),
        ErrorInput("weight for two saliency channels", ValueError, r"weight has shape \(24, 2, 7, 7\); expected "
                   r"\(24, 1, 7, 7\)", inputs=_replace("weight", lambda w: w.repeat(1, 2, 1, 1))),
        ErrorInput("non-square kernel", ValueError, r"weight has shape \(24, 1, 7, 5\); expected \(C, Cs, k, k\)",
                   inputs=_replace("weight", lambda w: w[..., :5])),
        ErrorInput("saliency of another batch", ValueError, r"saliency has shape \(1, 1, 32, 32\); expected x's "
                   r"batch 2", inputs=_replace("saliency", lambda s: s[:1])),
        ErrorInput("saliency of rank 3", ValueError, r"saliency has shape \(2, 32, 32\) \(3-D\); expected 4-D",
                   inputs=_replace("saliency", lambda s: s[:, 0])),
        ErrorInput("saliency in float32", TypeError, r"saliency.dtype=torch.float32; expected x's dtype",
                   inputs=_replace("saliency", lambda s: s.float())),
        ErrorInput("bias of the wrong size", ValueError, r"bias has shape \(12,\); expected \(24,\)",
                   inputs=_replace("bias", lambda b: b[::2])),
        ErrorInput("unknown impl", ValueError, r"impl='fastest'", options={"impl": "fastest"}),
    ],
    layer_error_inputs=[
        bad_layer_option("kernel_size", 4, ValueError, " an odd int >= 1"),
        bad_layer_option("kernel_size", 0, ValueError, " an odd int >= 1"),
        bad_layer_option("saliency_channels", 1.0, expected=" an int >= 1"),
    ],
))
