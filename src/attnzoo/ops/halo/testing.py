"""Test spec of HaloNet attention: awkward cases (strides, halos, padding modes), inputs, random cases."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.halo.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, LayerErrorInput, OpTestSpec, bad_layer_option, \
    flag_error_inputs, int_error_inputs, qkv_inputs, random_tensor, register_spec, scale_error_inputs


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k, v (the query subsampled by ``stride``) and, with ``rel``, both tables at timm's init scale."""
    inputs = qkv_inputs(case, dtype, device, generator)
    stride = case.get("stride", 1)
    inputs["query"] = inputs["query"][:, :, ::stride, ::stride].contiguous()
    if case.get("rel"):
        rows, dim = 2 * (case["block_size"] + 2 * case["halo_size"]) - 1, case["head_dim"]
        for name in ("rel_h", "rel_w"):
            inputs[name] = random_tensor((rows, dim), dtype, device, generator) * dim ** -0.5
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"block_size": case["block_size"], "halo_size": case["halo_size"],
            "mask_padding": case.get("mask_padding", True), "stride": case.get("stride", 1)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    block = rnd.randint(1, 4)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "head_dim": rnd.randint(1, 9),
            "grid": (block * rnd.randint(1, 3), block * rnd.randint(1, 3)), "block_size": block,
            "halo_size": rnd.randint(0, 3), "stride": rnd.choice([s for s in (1, 2) if block % s == 0]),
            "mask_padding": rnd.random() < 0.5, "rel": rnd.random() < 0.5}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 2, "grid": (8, 12), "head_dim": 8, "block_size": 4, "halo_size": 2, "rel": True},
        {"batch": 3, "heads": 1, "grid": (6, 9), "head_dim": 60, "block_size": 3, "halo_size": 1, "rel": True,
         "mask_padding": False},
        {"batch": 1, "heads": 2, "grid": (8, 16), "head_dim": 8, "block_size": 4, "halo_size": 1, "stride": 2,
         "rel": True},
        {"batch": 2, "heads": 2, "grid": (5, 5), "head_dim": 8, "block_size": 5, "halo_size": 0, "rel": True},
        {"batch": 1, "heads": 1, "grid": (2, 14), "head_dim": 8, "block_size": 2, "halo_size": 3, "stride": 2,
         "mask_padding": False},
        {"batch": 1, "heads": 2, "grid": (3, 7), "head_dim": 8, "block_size": 1, "halo_size": 2, "rel": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (4, 4), "head_dim": 2, "block_size": 2, "halo_size": 1,
               "mask_padding": False, "rel": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    layer_input_shape=(2, 12, 8, 32),
    error_inputs=[
        ErrorInput("block not dividing the grid", ValueError, "block_size", options={"block_size": 5}),
        ErrorInput("negative halo", ValueError, "halo_size", options={"halo_size": -1}),
        *scale_error_inputs(),
        *flag_error_inputs("mask_padding"),
        *int_error_inputs("stride"),
        *int_error_inputs("block_size"),
        *int_error_inputs("halo_size", minimum=0),
    ],
    layer_error_inputs=[
        bad_layer_option("stride", 1.5, expected=" an int >= 1"),
        LayerErrorInput("stride=3", ValueError, r"stride=3: must divide block_size=4", {"stride": 3}),
        bad_layer_option("mask_padding", "yes", expected=" a bool"),
    ],
))
