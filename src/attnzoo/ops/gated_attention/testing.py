"""Test spec of gated attention: the softmax cases with a random gate in (0, 1), gates of exactly 0 and 1, the
causal future (through the gate too), bad gates and bad gate modules."""

from __future__ import annotations

from typing import Any

import torch

from attnzoo.ops.gated_attention.functional import VARIANT_NAME
from attnzoo.ops.softmax.testing import CASES as SOFTMAX_CASES
from attnzoo.ops.softmax.testing import _random_softmax
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    dropin_options,
    flag_error_inputs,
    qkv_inputs,
    random_tensor,
    register_spec,
    same_token_future,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """:func:`attnzoo.testing.qkv_inputs` and a ``(B, Hq, Nq)`` gate ``sigmoid(N(0, 1))``; with
    ``"gate": "binary"`` every third gate is exactly 0 and every third exactly 1."""
    inputs = qkv_inputs(case, dtype, device, generator)
    gate = torch.sigmoid(random_tensor(inputs["query"].shape[:3], torch.float64, "cpu", generator))
    if case.get("gate") == "binary":
        flat = gate.view(-1)
        flat[0::3], flat[1::3] = 0.0, 1.0
    return {**inputs, "gate": gate.to(dtype=dtype, device=device)}


def _options(case: Case) -> dict[str, Any]:
    return {"is_causal": case.get("is_causal", False), **dropin_options(case)}


def _with_gate(inputs: Inputs, gate: torch.Tensor) -> Inputs:
    return {**inputs, "gate": gate}


CASES = [*SOFTMAX_CASES,
         {"batch": 2, "heads": 3, "grid": (40,), "head_dim": 8, "is_causal": True, "gate": "binary"},
         {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (9,), "kv_length": 30, "head_dim": 4, "gate": "binary",
          "key_padding": True}]

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (12,), "head_dim": 4, "is_causal": True},
    make_inputs=_inputs,
    options=_options,
    random_case=lambda rnd: {**_random_softmax(rnd), "gate": "binary" if rnd.random() < 0.25 else "sigmoid"},
    future_mask=same_token_future(False),
    batched_inputs=("query", "key", "value", "gate"),
    layer_input_shape=(2, 64, 32),
    error_inputs=[
        *scale_error_inputs(), *flag_error_inputs("is_causal"),
        ErrorInput("gate of the wrong length", ValueError, r"gate has shape \(1, 1, 2\); expected \(1, 1, 1\)",
                   inputs=lambda i: _with_gate(i, i["gate"].repeat(1, 1, 2))),
        ErrorInput("gate per KV head", ValueError, r"gate has shape \(2, 2, 63\); expected \(2, 4, 63\)",
                   inputs=lambda i: _with_gate(i, i["gate"][:, ::2]), case=SOFTMAX_CASES[5]),
        ErrorInput("gate (B, H, N, 1)", ValueError, r"gate has shape \(1, 1, 1, 1\); expected \(1, 1, 1\)",
                   inputs=lambda i: _with_gate(i, i["gate"][..., None])),
        ErrorInput("gate in float32", TypeError, r"gate.dtype=torch.float32; expected the query's dtype",
                   inputs=lambda i: _with_gate(i, i["gate"].float())),
        ErrorInput("gate not a tensor", TypeError, r"gate must be a torch.Tensor, got float",
                   inputs=lambda i: _with_gate(i, 0.5)),
        ErrorInput("gate above 1", ValueError, r"gate has 1 values outside \[0, 1\] \(from 1.5 to 1.5\)",
                   inputs=lambda i: _with_gate(i, i["gate"] + 1.5 - i["gate"])),
        ErrorInput("gate below 0", ValueError, r"gate has 1 values outside \[0, 1\] \(from -0.1 to -0.1\)",
                   inputs=lambda i: _with_gate(i, i["gate"] * 0 - 0.1)),
        ErrorInput("query heads not a multiple of the KV heads", ValueError,
                   r"key has 2 heads and query 3; expected equal head counts, or enable_gqa=True",
                   inputs=lambda i: {**i, "query": i["query"][:, :3], "gate": i["gate"][:, :3]},
                   case=SOFTMAX_CASES[5]),
    ],
    layer_error_inputs=[
        bad_layer_option("is_causal", "no", expected=" a bool"),
        bad_layer_option("gate", "sparse", ValueError, " one of ('unconditional', 'linear'"),
        bad_layer_option("softmax", "hard", ValueError, " one of ('vanilla', 'clipped')"),
        *(bad_layer_option("gate_init", bad, ValueError, " None or a real number in (0, 1)")
          for bad in (0.0, 1.0, 1.5, float("nan"))),
        bad_layer_option("gate_init", "0.25", expected=" None or a real number in (0, 1)"),
        bad_layer_option("gamma", -0.1, ValueError, " None with softmax='vanilla'"),
        bad_layer_option("gamma", 0.3, ValueError, " a finite real number <= 0", extra={"softmax": "clipped"}),
        bad_layer_option("zeta", -0.5, ValueError, "", extra={"softmax": "clipped"}),
        bad_layer_option("zeta", float("inf"), ValueError, " a finite real number", extra={"softmax": "clipped"}),
    ],
))
