"""Test spec of SparseGSA: one to many channels per head, one pixel to thousands, top-k from one similarity to all,
ReLU and softmax, temperatures of both signs, and the bad top-k, activations and temperatures."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.sparse_global.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    int_error_inputs,
    qkv_inputs,
    random_tensor,
    register_spec,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k, v ``(B, H, N, D)`` standard normal and a ``(H,)`` temperature in ``[-2, 3]`` (learned, any sign)."""
    inputs = qkv_inputs(case, dtype, device, generator)
    temperature = random_tensor((case["heads"],), torch.float64, "cpu", generator).mul(1.2).add(0.5).clamp(-2, 3)
    return {**inputs, "temperature": temperature.to(dtype=dtype, device=device)}


def _options(case: Case) -> dict[str, Any]:
    return {"top_k": case.get("top_k"), "activation": case.get("activation", "relu")}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    d = rnd.randint(1, 9)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 40),), "head_dim": d,
            "top_k": rnd.choice([None, rnd.randint(1, d)]), "activation": rnd.choice(["relu", "softmax"])}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 2, "heads": 6, "grid": (144,), "head_dim": 8},  # the official 48 channels, 6 heads, 12x12 pixels
        # the dtype case (cases[1]): softmax, every similarity. With ReLU, bfloat16 rounding flips the sign of the
        # similarities near 0 and with it ReLU's derivative (measured: 13% of the largest float64 gradient at D = 60,
        # 0.6% at D = 8); a half-precision top-k may keep another near-tied channel
        {"batch": 1, "heads": 2, "grid": (63,), "head_dim": 60, "activation": "softmax"},
        {"batch": 1, "heads": 2, "grid": (63,), "head_dim": 60, "top_k": 6},
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8},
        {"batch": 2, "heads": 3, "grid": (500,), "head_dim": 8, "top_k": 1},
        {"batch": 2, "heads": 3, "grid": (50,), "head_dim": 5, "top_k": 5, "activation": "softmax"},
        {"batch": 1, "heads": 2, "grid": (33,), "head_dim": 16, "top_k": 3, "activation": "softmax"},
        {"batch": 1, "heads": 4, "grid": (4096,), "head_dim": 1},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (7,), "head_dim": 3, "top_k": 2},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    layer_input_shape=(2, 8, 8, 32),
    # the workload: 4k tokens (64x64 pixels), the official 48 channels in 6 heads, 10% of the similarities
    # per query channel kept (top_k = 1 of 8)
    benchmark_case={"batch": 1, "heads": 6, "grid": (4096,), "head_dim": 8, "top_k": 1},
    error_inputs=[
        *int_error_inputs("top_k"),
        bad_option("top_k", 9, ValueError, " at most the number of channels per head D=8"),
        bad_option("activation", "gelu", ValueError, " one of ('relu', 'softmax')"),
        ErrorInput("temperature per head and channel", ValueError,
                   r"temperature has shape \(6, 1, 1\); expected \(6,\)",
                   inputs=lambda i: {**i, "temperature": i["temperature"][:, None, None]}),
        ErrorInput("temperature in float32", TypeError, r"temperature.dtype=torch.float32",
                   inputs=lambda i: {**i, "temperature": i["temperature"].float()}),
        ErrorInput("value with its own channel count", ValueError, r"value has shape \(2, 6, 144, 4\); expected the "
                   r"query's shape", inputs=lambda i: {**i, "value": i["value"][..., :4]}),
    ],
    layer_error_inputs=[
        bad_layer_option("top_k", 9, ValueError, " at most the channels per head dim / num_heads = 8"),
        bad_layer_option("top_k", 0, ValueError, " an int >= 1"),
        bad_layer_option("activation", "sigmoid", ValueError, " one of ('relu', 'softmax')"),
        bad_layer_option("bias", "no", expected=" a bool"),
        bad_layer_option("tlc_kernel", 0, ValueError, " an int >= 1"),
    ],
))
