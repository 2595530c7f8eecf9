"""Test spec of DARE target attention: one or many targets, attention narrower or wider than the representation,
padded histories (some fully padded), top-k search from 1 to more than the history."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.dare.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    int_error_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    b, m, n = case["batch"], case["targets"], case["length"]
    inputs = {"target": random_tensor((b, m, case["att_dim"]), dtype, device, generator),
              "history_attention": random_tensor((b, n, case["att_dim"]), dtype, device, generator),
              "history_representation": random_tensor((b, n, case["repr_dim"]), dtype, device, generator)}
    if case.get("key_padding"):
        mask = torch.rand(b, n, generator=generator) < 0.3
        mask[0] = True if b > 1 else mask[0]  # a history that is all padding
        inputs["key_padding_mask"] = mask.to(device)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"top_k": case["top_k"]} if case.get("top_k") else {}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "targets": rnd.randint(1, 4), "length": rnd.randint(1, 30),
            "att_dim": rnd.randint(1, 9), "repr_dim": rnd.randint(1, 9), "key_padding": rnd.random() < 0.3,
            "top_k": rnd.choice([0, 0, 1, rnd.randint(1, 35)])}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "targets": 1, "length": 1, "att_dim": 8, "repr_dim": 8},
        {"batch": 3, "targets": 2, "length": 63, "att_dim": 16, "repr_dim": 60},
        {"batch": 2, "targets": 1, "length": 500, "att_dim": 8, "repr_dim": 32, "top_k": 20},
        {"batch": 2, "targets": 5, "length": 40, "att_dim": 60, "repr_dim": 8, "key_padding": True},
        {"batch": 3, "targets": 3, "length": 40, "att_dim": 8, "repr_dim": 8, "key_padding": True, "top_k": 10},
        {"batch": 2, "targets": 2, "length": 7, "att_dim": 4, "repr_dim": 4, "top_k": 1},
        {"batch": 2, "targets": 2, "length": 7, "att_dim": 4, "repr_dim": 4, "top_k": 50},
    ],
    tiny_case={"batch": 1, "targets": 2, "length": 6, "att_dim": 3, "repr_dim": 4, "top_k": 4},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("target", "history_attention", "history_representation"),
    layer_input_shape=(2, 50, 32),
    error_inputs=[*int_error_inputs("top_k"), *scale_error_inputs(),
                  ErrorInput("history of another attention width", ValueError, "history_attention has shape",
                             inputs=lambda x: {**x, "history_attention": x["history_attention"][..., :1]}),
                  ErrorInput("representation of another length", ValueError, "history_representation has shape",
                             inputs=lambda x: {**x, "history_representation": x["history_representation"][:, :0]}),
                  ErrorInput("a 2-D target", ValueError, "target has shape",
                             inputs=lambda x: {**x, "target": x["target"][:, 0]}),
                  ErrorInput("mixed dtypes", TypeError, "dtypes differ",
                             inputs=lambda x: {**x, "target": x["target"].float()}),
                  ErrorInput("key padding of the wrong shape", ValueError, "key_padding_mask has shape",
                             inputs=lambda x: {**x, "key_padding_mask": torch.zeros(1, dtype=torch.bool)})],
    layer_error_inputs=[bad_layer_option("top_k", 0, ValueError, " an int >= 1"),
                        bad_layer_option("decoupled", "yes", expected=" a bool"),
                        bad_layer_option("attention_dim", 8, ValueError, " None or dim=32",
                                         extra={"decoupled": False})],
))
