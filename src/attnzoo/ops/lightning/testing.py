"""Test spec of lightning attention: cases with decays, states and odd block sizes; random cases."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.lightning.functional import VARIANT_NAME
from attnzoo.registry import NotSupportedError
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    case_future_mask,
    dropin_options,
    flag_error_inputs,
    int_error_inputs,
    random_lengths,
    random_tensor,
    register_spec,
)


def sequence_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator, state_dim: int,
                    state_extra: int = 0) -> Inputs:
    """``query`` ``(B, H, N, D)``, ``key`` ``(B, Hkv, N, D)``, ``value`` ``(B, Hkv, N, E)`` (``Hkv`` the case's
    ``kv_heads``, else ``H``) and, if the case asks, an initial state ``(B, H, state_dim, E + state_extra)``, a
    random ``key_padding_mask`` (about 30% padding) and the ``cu_seqlens`` of its ``varlen`` lengths."""
    b, h, n, d = case["batch"], case["heads"], case["length"], case["head_dim"]
    e, hkv = case.get("value_dim", d), case.get("kv_heads") or case["heads"]
    inputs = {"query": random_tensor((b, h, n, d), dtype, device, generator),
              "key": random_tensor((b, hkv, n, d), dtype, device, generator),
              "value": random_tensor((b, hkv, n, e), dtype, device, generator)}
    if case.get("initial_state"):
        inputs["initial_state"] = random_tensor((b, h, state_dim, e + state_extra), dtype, device, generator)
    if case.get("key_padding"):
        inputs["key_padding_mask"] = (torch.rand(b, n, generator=generator) < 0.3).to(device)
    if case.get("varlen"):
        inputs["cu_seqlens"] = torch.tensor([0, *case["varlen"]]).cumsum(0).to(device)
    return inputs


def random_dropin(rnd: random.Random, case: dict[str, Any]) -> dict[str, Any]:
    """``case`` with, each with probability 0.2, grouped KV heads, key padding and packed sequences (then batch 1
    and no states)."""
    if rnd.random() < 0.2:
        kv_heads = rnd.randint(1, 2)
        case.update(kv_heads=kv_heads, heads=kv_heads * rnd.randint(1, 3))
    case["key_padding"] = rnd.random() < 0.2
    if rnd.random() < 0.2:
        case.update(batch=1, initial_state=False, final_state=False, varlen=random_lengths(rnd, case["length"]))
    return case


_PACKED = {"batch": 1, "heads": 2, "length": 12, "head_dim": 4, "varlen": (5, 7)}


def linear_dropin_error_inputs() -> list[ErrorInput]:
    """The drop-in rules of the linear-attention ops: no states with packed sequences, keys as long as queries,
    no attention mask (no implementation declares one)."""
    def longer_keys(x: Inputs) -> Inputs:
        return {**x, "key": torch.cat([x["key"]] * 2, dim=2), "value": torch.cat([x["value"]] * 2, dim=2)}

    return [
        ErrorInput("packed sequences with a final state", ValueError, "cu_seqlens with initial_state",
                   options={"output_final_state": True}, case=_PACKED),
        ErrorInput("keys longer than queries", ValueError, "initial_state", inputs=longer_keys),
        ErrorInput("an attention mask", NotSupportedError, "attn_mask",
                   inputs=lambda x: {**x, "attn_mask": x["query"].new_ones(x["query"].shape[2], x["query"].shape[2],
                                                                         dtype=torch.bool)}),
    ]


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    inputs = sequence_inputs(case, dtype, device, generator, case["head_dim"])
    if case.get("decay"):
        # slopes in [0.02, 1]: from almost no decay to λ = 1/e per token
        u = torch.rand(case["heads"], generator=generator, dtype=torch.float64)
        inputs["decay"] = (0.02 + 0.98 * u).to(dtype=dtype, device=device)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"block_size": case.get("block_size", 64), "output_final_state": case.get("final_state", False),
            **dropin_options(case)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return random_dropin(rnd, {
        "batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 40),
        "head_dim": rnd.randint(1, 9), "value_dim": rnd.randint(1, 9), "block_size": rnd.randint(1, 16),
        "decay": rnd.random() < 0.7, "initial_state": rnd.random() < 0.3, "final_state": rnd.random() < 0.5})


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
        # drop-in features (attnzoo.ops.lightning.sequences): grouped KV heads with states, key padding, packed
        # sequences (one of length 1, one longer than a block), and all three at once
        {"batch": 2, "heads": 4, "kv_heads": 2, "length": 40, "head_dim": 8, "value_dim": 5, "decay": True,
         "initial_state": True, "block_size": 7, "final_state": True},
        {"batch": 3, "heads": 2, "length": 45, "head_dim": 8, "decay": True, "key_padding": True,
         "initial_state": True, "block_size": 8, "final_state": True},
        {"batch": 1, "heads": 2, "length": 40, "head_dim": 8, "decay": True, "block_size": 6, "varlen": (9, 1, 30)},
        {"batch": 1, "heads": 6, "kv_heads": 3, "length": 33, "head_dim": 4, "value_dim": 3, "decay": True,
         "block_size": 5, "key_padding": True, "varlen": (12, 21)},
    ],
    tiny_case={"batch": 1, "heads": 1, "length": 5, "head_dim": 2, "decay": True, "initial_state": True,
               "block_size": 2, "final_state": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(True),  # packed sequences too: queries and keys are the same tokens
    batched_states=("initial_state",),
    layer_input_shape=(2, 64, 32),
    error_inputs=[
        ErrorInput("zero block", ValueError, "block_size", options={"block_size": 0}),
        *int_error_inputs("block_size"),
        *flag_error_inputs("output_final_state"),
        ErrorInput("negative decay", ValueError, "decay=", inputs=lambda x: {**x, "decay": -x["query"].new_ones(
            x["query"].shape[1])}),
        *linear_dropin_error_inputs(),
    ],
    layer_error_inputs=[bad_layer_option("block_size", 2.0, expected=" an int >= 1")],
))
