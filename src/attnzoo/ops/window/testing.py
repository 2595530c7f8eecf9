"""Test spec of Swin (shifted) window attention: awkward cases, inputs, random cases."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.window.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, qkv_inputs, random_tensor, \
    register_spec, scale_error_inputs
from attnzoo.validation import per_axis


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    inputs = qkv_inputs(case, dtype, device, generator)
    if case.get("rpb"):
        window = per_axis(case["window_size"], 2, "window_size")
        inputs["rpb"] = random_tensor((case["heads"], *(2 * w - 1 for w in window)), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"window_size": case["window_size"], "shift_size": case.get("shift_size", 0)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    window = (rnd.randint(1, 4), rnd.randint(1, 4))
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "head_dim": rnd.randint(1, 9),
            "grid": tuple(w * rnd.randint(1, 3) for w in window), "window_size": window,
            "shift_size": tuple(rnd.randrange(w) for w in window), "rpb": rnd.random() < 0.5}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 2, "grid": (9, 12), "head_dim": 8, "window_size": 3, "shift_size": 1, "rpb": True},
        {"batch": 3, "heads": 1, "grid": (8, 12), "head_dim": 60, "window_size": 4, "shift_size": 2, "rpb": True},
        {"batch": 1, "heads": 2, "grid": (6, 10), "head_dim": 8, "window_size": (3, 5), "shift_size": (2, 0)},
        {"batch": 2, "heads": 2, "grid": (7, 7), "head_dim": 8, "window_size": 7, "rpb": True},
        {"batch": 1, "heads": 1, "grid": (1, 16), "head_dim": 60, "window_size": (1, 8), "shift_size": (0, 7),
         "rpb": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (4, 2), "head_dim": 2, "window_size": 2, "shift_size": 1,
               "rpb": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    layer_input_shape=(2, 10, 12, 32),
    error_inputs=[
        ErrorInput("shift not smaller than the window", ValueError, "shift_size", options={"shift_size": 3}),
        ErrorInput("zero window", ValueError, "window_size", options={"window_size": 0}),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[bad_layer_option("shift_size", 0.5, expected=" an int")],
))
