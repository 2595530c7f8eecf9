"""Test spec of neighborhood attention 1-D / 2-D / 3-D: awkward cases, inputs, random cases, future masks."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.neighborhood.functional import VARIANT_NAMES
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    case_future_mask,
    dropin_options,
    flag_error_inputs,
    qkv_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    inputs = qkv_inputs(case, dtype, device, generator)
    if case.get("rpb"):
        kernels = case["kernel_size"] if isinstance(case["kernel_size"], tuple) else (case["kernel_size"],) * len(case["grid"])
        inputs["rpb"] = random_tensor((case["heads"], *(2 * k - 1 for k in kernels)), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"kernel_size": case["kernel_size"], "dilation": case.get("dilation", 1),
            "is_causal": case.get("is_causal", False), **dropin_options(case)}


def _random_case(ndim: int):  # noqa: ANN202
    def draw(rnd: random.Random) -> dict[str, Any]:
        grid, kernel, dilation = [], [], []
        for _ in range(ndim):
            length = rnd.randint(1, 24 if ndim == 1 else 9)
            d = rnd.randint(1, max(1, length // 3))
            k = rnd.choice([k for k in range(1, length // d + 1) if k % 2 == 1])
            grid.append(length), kernel.append(k), dilation.append(d)
        return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": tuple(grid),
                "head_dim": rnd.randint(1, 9), "kernel_size": tuple(kernel), "dilation": tuple(dilation),
                "is_causal": tuple(rnd.random() < 0.3 for _ in range(ndim)), "rpb": rnd.random() < 0.5}
    return draw


_CASES = {
    1: [
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "kernel_size": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "kernel_size": 7, "dilation": 3, "rpb": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "kernel_size": 13, "dilation": 2, "is_causal": True},
        {"batch": 1, "heads": 2, "grid": (63,), "head_dim": 8, "kernel_size": 63},
        # drop-in features (tiled: grouped KV heads; reference: all of these)
        {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (40,), "head_dim": 8, "kernel_size": 7, "dilation": 2,
         "rpb": True},
        {"batch": 3, "heads": 2, "grid": (31,), "head_dim": 8, "kernel_size": 5, "is_causal": True, "rpb": True,
         "key_padding": True, "attn_mask": "bool", "return_weights": True},
        {"batch": 2, "heads": 3, "kv_heads": 1, "grid": (20,), "head_dim": 4, "kernel_size": 9,
         "attn_mask": "float", "attn_mask_shape": "plain", "key_padding": True},
    ],
    2: [
        {"batch": 1, "heads": 2, "grid": (9, 13), "head_dim": 8, "kernel_size": (3, 5), "dilation": (2, 1), "rpb": True},
        {"batch": 3, "heads": 1, "grid": (12, 7), "head_dim": 60, "kernel_size": 7, "is_causal": (True, False)},
        {"batch": 1, "heads": 2, "grid": (1, 23), "head_dim": 8, "kernel_size": (1, 5), "dilation": (1, 4), "rpb": True},
        {"batch": 2, "heads": 2, "grid": (16, 16), "head_dim": 8, "kernel_size": 7, "rpb": True},
        {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (9, 11), "head_dim": 8, "kernel_size": (3, 5),
         "dilation": (2, 1), "rpb": True},
        {"batch": 2, "heads": 2, "grid": (7, 6), "head_dim": 8, "kernel_size": 3, "is_causal": (True, False),
         "rpb": True, "key_padding": True, "attn_mask": "bool", "attn_mask_shape": "batch", "return_weights": True},
        {"batch": 2, "heads": 2, "kv_heads": 1, "grid": (5, 8), "head_dim": 4, "kernel_size": 5,
         "attn_mask": "float", "attn_mask_shape": "full"},
    ],
    3: [
        {"batch": 1, "heads": 2, "grid": (5, 6, 7), "head_dim": 8, "kernel_size": 3, "dilation": (1, 2, 1),
         "is_causal": (False, False, True), "rpb": True},
        {"batch": 3, "heads": 1, "grid": (4, 3, 9), "head_dim": 60, "kernel_size": (3, 3, 5)},
        {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (3, 4, 5), "head_dim": 4, "kernel_size": 3, "rpb": True,
         "key_padding": True, "attn_mask": "bool", "attn_mask_shape": "plain", "return_weights": True},
        {"batch": 1, "heads": 2, "kv_heads": 1, "grid": (3, 3, 6), "head_dim": 4, "kernel_size": 3,
         "dilation": (1, 1, 2)},
    ],
}
_TINY = {
    1: {"batch": 1, "heads": 1, "grid": (6,), "head_dim": 3, "kernel_size": 3, "dilation": 2, "rpb": True},
    2: {"batch": 1, "heads": 1, "grid": (4, 3), "head_dim": 2, "kernel_size": 3, "is_causal": (True, False), "rpb": True},
    3: {"batch": 1, "heads": 1, "grid": (3, 2, 3), "head_dim": 2, "kernel_size": (3, 1, 3), "rpb": True},
}
_LAYER_INPUTS = {1: (2, 64, 32), 2: (2, 14, 14, 32), 3: (2, 6, 6, 6, 32)}
_ERRORS = [
    ErrorInput("even kernel", ValueError, "kernel_size=.*odd", options={"kernel_size": 2}),
    ErrorInput("kernel beyond the grid", ValueError, "kernel_size=.*kernel\\*dilation <= length",
               options={"kernel_size": 101}),
    ErrorInput("zero dilation", ValueError, "dilation=0", options={"dilation": 0}),
    ErrorInput("rpb of the wrong shape", ValueError, "rpb has shape",
               inputs=lambda x: {**x, "rpb": x["query"].new_zeros(1)}),
    *scale_error_inputs(),
    *flag_error_inputs("is_causal"),
]
_LAYER_ERRORS = [
    bad_layer_option("kernel_size", 3.0, expected=" an int"),
    bad_layer_option("is_causal", "no", expected=" a bool"),
    bad_layer_option("rel_pos_bias", "no", expected=" a bool"),
]

for _ndim in (1, 2, 3):
    register_spec(OpTestSpec(
        variant=VARIANT_NAMES[_ndim],
        cases=_CASES[_ndim],
        tiny_case=_TINY[_ndim],
        make_inputs=_inputs,
        options=_options,
        random_case=_random_case(_ndim),
        future_mask=case_future_mask(False),
        layer_input_shape=_LAYER_INPUTS[_ndim],
        error_inputs=_ERRORS,
        layer_error_inputs=_LAYER_ERRORS,
    ))
