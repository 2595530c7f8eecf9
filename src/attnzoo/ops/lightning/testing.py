"""Test spec of lightning attention: cases with decays, states and odd block sizes; random cases."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.lightning.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, case_future_mask, \
    flag_error_inputs, int_error_inputs, random_tensor, register_spec


def sequence_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator, state_dim: int,
                    state_extra: int = 0) -> Inputs:
    """``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, E)`` and, if the case asks, an initial state
    ``(B, H, state_dim, E + state_extra)``."""
    b, h, n, d = case["batch"], case["heads"], case["length"], case["head_dim"]
    e = case.get("value_dim", d)
    inputs = {"query": random_tensor((b, h, n, d), dtype, device, generator),
              "key": random_tensor((b, h, n, d), dtype, device, generator),
              "value": random_tensor((b, h, n, e), dtype, device, generator)}
    if case.get("initial_state"):
        inputs["initial_state"] = random_tensor((b, h, state_dim, e + state_extra), dtype, device, generator)
    return inputs


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    inputs = sequence_inputs(case, dtype, device, generator, case["head_dim"])
    if case.get("decay"):
        # slopes in [0.02, 1]: from almost no decay to λ = 1/e per token
        u = torch.rand(case["heads"], generator=generator, dtype=torch.float64)
        inputs["decay"] = (0.02 + 0.98 * u).to(dtype=dtype, device=device)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"block_size": case.get("block_size", 64), "output_final_state": case.get("final_state", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 40),
            "head_dim": rnd.randint(1, 9), "value_dim": rnd.randint(1, 9), "block_size": rnd.randint(1, 16),
            "decay": rnd.random() < 0.7, "initial_state": rnd.random() < 0.3, "final_state": rnd.random() < 0.5}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 3, "heads": 2, "length": 63, "head_dim": 8, "decay": True, "block_size": 7, "final_state": True},
        {"batch": 1, "heads": 1, "length": 1, "head_dim": 8},
        {"batch": 1, "heads": 2, "length": 500, "head_dim": 8, "decay": True},
        {"batch": 1, "heads": 2, "length": 500, "head_dim": 60, "decay": True, "initial_state": True, "block_size": 7,
         "final_state": True},
        {"batch": 3, "heads": 2, "length": 63, "head_dim": 60, "value_dim": 5, "initial_state": True, "block_size": 16},
        {"batch": 1, "heads": 3, "length": 128, "head_dim": 8, "decay": True, "initial_state": True},
        {"batch": 2, "heads": 1, "length": 30, "head_dim": 8, "decay": True, "block_size": 1},
    ],
    tiny_case={"batch": 1, "heads": 1, "length": 5, "head_dim": 2, "decay": True, "initial_state": True,
               "block_size": 2, "final_state": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(True),
    batched_states=("initial_state",),
    layer_input_shape=(2, 64, 32),
    error_inputs=[
        ErrorInput("zero block", ValueError, "block_size", options={"block_size": 0}),
        *int_error_inputs("block_size"),
        *flag_error_inputs("output_final_state"),
        ErrorInput("negative decay", ValueError, "decay=", inputs=lambda x: {**x, "decay": -x["query"].new_ones(
            x["query"].shape[1])}),
    ],
    layer_error_inputs=[bad_layer_option("block_size", 2.0, expected=" an int >= 1")],
))
