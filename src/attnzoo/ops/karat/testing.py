"""Test spec of Fourier-KArAt: ranks and harmonics from 1 up, lengths 1 to 500."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.karat.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, qkv_inputs, random_tensor, \
    register_spec, scale_error_inputs


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    inputs = qkv_inputs({**case, "grid": (case["length"],)}, dtype, device, generator)
    coef_shape = (case["heads"], case["rank"], case["length"], case["harmonics"])
    inputs["cos_coef"] = random_tensor(coef_shape, dtype, device, generator)
    inputs["sin_coef"] = random_tensor(coef_shape, dtype, device, generator)
    inputs["proj"] = random_tensor((case["heads"], case["length"], case["rank"]), dtype, device, generator)
    return inputs


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 12),
            "head_dim": rnd.randint(1, 9), "rank": rnd.randint(1, 4), "harmonics": rnd.randint(1, 3)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 1, "length": 1, "head_dim": 8, "rank": 3, "harmonics": 1},
        {"batch": 3, "heads": 2, "length": 63, "head_dim": 60, "rank": 12, "harmonics": 3},
        {"batch": 1, "heads": 2, "length": 500, "head_dim": 8, "rank": 4, "harmonics": 2},
    ],
    tiny_case={"batch": 1, "heads": 1, "length": 3, "head_dim": 2, "rank": 2, "harmonics": 2},
    make_inputs=_inputs,
    random_case=_random_case,
    layer_input_shape=(2, 64, 32),
    error_inputs=[ErrorInput("sin and cos coefficients of different shapes", ValueError, "sin_coef has shape",
                             inputs=lambda x: {**x, "sin_coef": x["sin_coef"][..., :0]}),
                  *scale_error_inputs()],
    layer_error_inputs=[bad_layer_option("seq_len", 6.0, expected=" an int >= 1")],
))
