"""Test spec of the LMU memory: orders 1 to 12, windows from half a token to 128 tokens."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.base_conv.testing import (
    random_sequence_dropin,
    sequence_dropin_error_inputs,
    sequence_dropin_inputs,
)
from attnzoo.ops.lmu.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    case_future_mask,
    flag_error_inputs,
    int_error_inputs,
    random_tensor,
    register_spec,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``x`` ``(B, N, C)`` and, if the case asks, a memory carried from earlier tokens ``(B, C, order)``, a key
    padding mask and packed sequences' ``cu_seqlens``."""
    b, c = case["batch"], case["channels"]
    inputs = {"x": random_tensor((b, case["length"], c), dtype, device, generator)}
    if case.get("initial_state"):
        inputs["initial_state"] = random_tensor((b, c, case["order"]), dtype, device, generator)
    return inputs | sequence_dropin_inputs(case, generator, device)


def _options(case: Case) -> dict[str, Any]:
    return {"order": case["order"], "theta": case["theta"], "output_final_state": case.get("final_state", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return random_sequence_dropin(rnd, {
        "batch": rnd.randint(1, 3), "length": rnd.randint(1, 24), "channels": rnd.randint(1, 5),
        "order": rnd.randint(1, 8), "theta": rnd.choice([0.5, 2.0, 7.5, 32.0]),
        "initial_state": rnd.random() < 0.3, "final_state": rnd.random() < 0.5})


_PACKED = {"batch": 1, "length": 12, "channels": 2, "order": 3, "theta": 4.0, "varlen": (5, 7)}

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "length": 1, "channels": 8, "order": 4, "theta": 4.0},
        {"batch": 3, "length": 63, "channels": 60, "order": 12, "theta": 32.0, "final_state": True},
        {"batch": 1, "length": 500, "channels": 8, "order": 6, "theta": 128.0, "initial_state": True},
        {"batch": 2, "length": 63, "channels": 8, "order": 1, "theta": 0.5, "initial_state": True,
         "final_state": True},
        {"batch": 3, "length": 70, "channels": 5, "order": 6, "theta": 16.0, "key_padding": True,
         "initial_state": True, "final_state": True},
        {"batch": 1, "length": 80, "channels": 4, "order": 5, "theta": 8.0, "varlen": (9, 1, 70)},
        {"batch": 1, "length": 30, "channels": 3, "order": 4, "theta": 4.0, "key_padding": True, "varlen": (12, 18)},
    ],
    tiny_case={"batch": 1, "length": 6, "channels": 2, "order": 3, "theta": 4.0, "initial_state": True,
               "final_state": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(True),
    batched_inputs=("x",),
    batched_states=("initial_state",),
    layer_input_shape=(2, 64, 32),
    error_inputs=[
        ErrorInput("zero order", ValueError, "order", options={"order": 0}),
        ErrorInput("non-positive window", ValueError, "theta", options={"theta": 0.0}),
        *flag_error_inputs("output_final_state"),
        *int_error_inputs("order"),
        bad_option("theta", "8"),
        bad_option("theta", torch.tensor(8.0)),
        bad_option("theta", float("nan"), ValueError),
        *sequence_dropin_error_inputs(_PACKED),
        ErrorInput("packed sequences with a final state", ValueError, "cu_seqlens with initial_state",
                   options={"output_final_state": True}, case=_PACKED),
        ErrorInput("packed sequences with an initial state", ValueError, "cu_seqlens with initial_state",
                   case={**_PACKED, "initial_state": True}),
    ],
    layer_error_inputs=[
        bad_layer_option("theta", "128", expected=" a finite real number > 0"),
        bad_layer_option("memory_size", 0, ValueError, " an int >= 1"),
        bad_layer_option("batch_norm", "no", expected=" a bool"),
    ],
))
