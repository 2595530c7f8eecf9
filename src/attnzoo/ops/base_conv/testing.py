"""Test spec of BaseConv: filters from 1 tap to longer than the sequence, with and without activation/bias."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.base_conv.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    case_future_mask,
    flag_error_inputs,
    random_lengths,
    random_tensor,
    register_spec,
)


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
    return inputs | sequence_dropin_inputs(case, generator, device)


def sequence_dropin_inputs(case: Case, generator: torch.Generator, device: str) -> Inputs:
    """The ``key_padding_mask`` (about 30% padding) and ``cu_seqlens`` a case's ``key_padding`` / ``varlen`` ask for,
    drawn as :func:`attnzoo.testing.qkv_inputs` draws them."""
    inputs = {}
    if case.get("key_padding"):
        inputs["key_padding_mask"] = (torch.rand(case["batch"], case["length"], generator=generator) < 0.3).to(device)
    if case.get("varlen"):
        inputs["cu_seqlens"] = torch.tensor([0, *case["varlen"]]).cumsum(0).to(device)
    return inputs


def random_sequence_dropin(rnd: random.Random, case: dict[str, Any]) -> dict[str, Any]:
    """``case`` with key padding (probability 0.3) and packed sequences (0.3; then batch 1 and no states)."""
    case["key_padding"] = rnd.random() < 0.3
    if rnd.random() < 0.3:
        case.update(batch=1, initial_state=False, final_state=False, varlen=random_lengths(rnd, case["length"]))
    return case


def sequence_dropin_error_inputs(case: Case) -> list[ErrorInput]:
    """Bad drop-in inputs of a ``(B, N, C)`` op (``case``: packed sequences): a mask of the wrong shape or dtype,
    packed sequences in a batch of two or with lengths that miss tokens."""
    return [
        ErrorInput("key padding of the wrong shape", ValueError, "key_padding_mask has shape",
                   inputs=lambda x: {**x, "key_padding_mask": torch.zeros(1, dtype=torch.bool)}),
        ErrorInput("a float key padding mask", ValueError, "key_padding_mask has shape",
                   inputs=lambda x: {**x, "key_padding_mask": x["x"].new_zeros(x["x"].shape[:2])}),
        ErrorInput("packed sequences in a batch of two", ValueError, "packed layout",
                   inputs=lambda x: {**x, "x": torch.cat([x["x"]] * 2)}, case=case),
        ErrorInput("packed lengths that miss tokens", ValueError, "strictly increasing",
                   inputs=lambda x: {**x, "cu_seqlens": x["cu_seqlens"][:-1]}, case=case),
    ]


def _options(case: Case) -> dict[str, Any]:
    return {"use_act": case.get("use_act", False)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return random_sequence_dropin(rnd, {
        "batch": rnd.randint(1, 3), "length": rnd.randint(1, 24), "channels": rnd.randint(1, 6),
        "kernel": rnd.randint(1, 30), "use_act": rnd.random() < 0.5, "conv_bias": rnd.random() < 0.5})


_PACKED = {"batch": 1, "length": 12, "channels": 2, "kernel": 3, "varlen": (5, 7)}

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "length": 1, "channels": 8, "kernel": 3, "conv_bias": True},
        {"batch": 3, "length": 63, "channels": 60, "kernel": 63, "use_act": True},
        {"batch": 1, "length": 500, "channels": 8, "kernel": 500},
        {"batch": 2, "length": 500, "channels": 60, "kernel": 3, "conv_bias": True, "use_act": True},
        {"batch": 1, "length": 63, "channels": 8, "kernel": 100},
        {"batch": 3, "length": 40, "channels": 6, "kernel": 9, "conv_bias": True, "use_act": True,
         "key_padding": True},
        {"batch": 1, "length": 70, "channels": 6, "kernel": 70, "varlen": (9, 1, 60)},
        {"batch": 1, "length": 30, "channels": 4, "kernel": 5, "use_act": True, "key_padding": True,
         "varlen": (12, 18)},
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
                  *flag_error_inputs("use_act"),
                  *sequence_dropin_error_inputs(_PACKED)],
    layer_error_inputs=[bad_layer_option("use_act", 1, expected=" a bool")],
))
