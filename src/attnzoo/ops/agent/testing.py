"""Test spec of agent attention: from one agent to more agents than tokens, with and without biases."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.agent.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, qkv_inputs, random_tensor, \
    register_spec, scale_error_inputs


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k, v ``(B, H, N, D)``, agents ``(B, H, M, D)`` and, with ``bias``, both bias tables (std 0.5)."""
    inputs = qkv_inputs(case, dtype, device, generator)
    b, h, n, m = case["batch"], case["heads"], case["grid"][0], case["agents"]
    inputs["agents"] = random_tensor((b, h, m, case["head_dim"]), dtype, device, generator)
    if case.get("bias"):
        inputs["agent_bias"] = random_tensor((h, m, n), dtype, device, generator) * 0.5
        inputs["query_bias"] = random_tensor((h, n, m), dtype, device, generator) * 0.5
    return inputs


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 24),),
            "head_dim": rnd.randint(1, 9), "agents": rnd.randint(1, 9), "bias": rnd.random() < 0.5}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "agents": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "agents": 49, "bias": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "agents": 49, "bias": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 60, "agents": 9},
        {"batch": 2, "heads": 2, "grid": (63,), "head_dim": 8, "agents": 100, "bias": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (5,), "head_dim": 2, "agents": 3, "bias": True},
    make_inputs=_inputs,
    random_case=_random_case,
    batched_inputs=("query", "key", "value", "agents"),
    layer_input_shape=(2, 8, 6, 32),
    error_inputs=[ErrorInput("agent bias of the wrong shape", ValueError, "agent_bias has shape",
                             case={"batch": 1, "heads": 2, "grid": (8,), "head_dim": 4, "agents": 3, "bias": True},
                             inputs=lambda x: {**x, "agent_bias": x["agent_bias"][:, :1]}),
                  *scale_error_inputs()],
    layer_error_inputs=[bad_layer_option("agent_num", 4.0, expected=" an int >= 1"),
                        bad_layer_option("resolution", (8, 6.0))],
))
