"""Test spec of MSA-Conv: kernels 1 to the whole image, strides, dilations, paddings, both padding-key modes."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.msa_conv.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    random_tensor,
    register_spec,
    scale_error_inputs,
)

WINDOW_OPTIONS = ("kernel_size", "stride", "dilation", "padding", "padding_keys")


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k ``(B, H, X, Y, D)`` and v ``(B, H, X, Y, Dv)`` (``Dv`` = ``value_dim``, default ``D``)."""
    b, h, d = case["batch"], case["heads"], case["head_dim"]
    shape = (b, h, *case["grid"])
    return {"query": random_tensor((*shape, d), dtype, device, generator),
            "key": random_tensor((*shape, d), dtype, device, generator),
            "value": random_tensor((*shape, case.get("value_dim", d)), dtype, device, generator)}


def _options(case: Case) -> dict[str, Any]:
    return {name: case[name] for name in WINDOW_OPTIONS if name in case}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    """A random grid, odd kernel, stride, dilation and padding mode; the padding ``None`` (half the dilated
    window) or the smallest to the largest that keeps the window within the padded image."""
    grid = (rnd.randint(1, 12), rnd.randint(1, 12))
    kernel = tuple(rnd.choice([1, 3, 5]) for _ in grid)
    dilation = tuple(rnd.randint(1, 3) for _ in grid)
    padding = None
    if rnd.random() < 0.5:
        span = [d * (k - 1) for k, d in zip(kernel, dilation)]
        padding = tuple(rnd.randint(max(0, -((n - s - 1) // 2)), s // 2) for n, s in zip(grid, span))
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": grid, "head_dim": rnd.randint(1, 8),
            "value_dim": rnd.randint(1, 8), "kernel_size": kernel, "stride": (rnd.randint(1, 3), rnd.randint(1, 3)),
            "dilation": dilation, "padding": padding, "padding_keys": rnd.choice(["masked", "zeros"])}


CASE = {"batch": 2, "heads": 2, "grid": (9, 7), "head_dim": 8, "kernel_size": 3}
register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        CASE,
        {"batch": 3, "heads": 2, "grid": (14, 14), "head_dim": 60, "value_dim": 7, "kernel_size": 7},
        {"batch": 1, "heads": 1, "grid": (1, 1), "head_dim": 8, "kernel_size": 1},
        {"batch": 2, "heads": 3, "grid": (11, 13), "head_dim": 4, "kernel_size": 5, "stride": 2, "dilation": 2},
        {"batch": 1, "heads": 2, "grid": (12, 10), "head_dim": 8, "kernel_size": (3, 5), "stride": (3, 1),
         "dilation": (1, 2), "padding": (0, 2)},
        {"batch": 2, "heads": 2, "grid": (9, 9), "head_dim": 8, "kernel_size": 3, "dilation": 3,
         "padding_keys": "zeros"},
        {"batch": 1, "heads": 2, "grid": (7, 7), "head_dim": 5, "kernel_size": 7, "stride": 7, "padding": 0},
        {"batch": 1, "heads": 1, "grid": (6, 5), "head_dim": 3, "kernel_size": (11, 9), "padding_keys": "zeros"},
        {"batch": 1, "heads": 2, "grid": (32, 32), "head_dim": 16, "kernel_size": 7, "stride": 2},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (4, 5), "head_dim": 2, "kernel_size": 3, "stride": (1, 2)},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    layer_input_shape=(2, 7, 6, 32),
    error_inputs=[
        ErrorInput("an even kernel", ValueError, r"kernel_size=4: expected odd sizes", {"kernel_size": 4}),
        ErrorInput("kernel 0", ValueError, r"kernel_size=0: every entry must be >= 1", {"kernel_size": 0}),
        ErrorInput("stride 0", ValueError, r"stride=\(1, 0\): every entry must be >= 1", {"stride": (1, 0)}),
        ErrorInput("dilation 0", ValueError, r"dilation=0: every entry must be >= 1", {"dilation": 0}),
        bad_option("stride", 1.5, expected=" an int or a sequence of 2 ints"),
        bad_option("kernel_size", (3, 3, 3), expected=" an int or a sequence of 2 ints"),
        ErrorInput("a window larger than the padded image", ValueError,
                   r"kernel_size=3, dilation=4: the dilated window d·\(k - 1\) \+ 1 = 9 on axis 1 is larger "
                   r"than the padded image 7 \+ 2·0 = 7", {"dilation": 4, "padding": 0}),
        ErrorInput("padding beyond the half window", ValueError,
                   r"padding=2: expected at most dilation·\(kernel_size - 1\)/2 = \(1, 1\)", {"padding": 2}),
        ErrorInput("negative padding", ValueError, r"padding=-1: every entry must be >= 0", {"padding": -1}),
        ErrorInput("unknown padding_keys", ValueError, r"padding_keys='reflect': expected one of",
                   {"padding_keys": "reflect"}),
        ErrorInput("a 1-D sequence", ValueError, r"query has shape \(2, 2, 63, 8\) \(4-D\); expected 5-D",
                   inputs=lambda i: {n: t.flatten(2, 3) for n, t in i.items()}),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[
        bad_layer_option("kernel_size", 2, ValueError, " odd sizes"),
        LayerErrorInput("stride=0", ValueError, r"stride=0: every entry must be >= 1", {"stride": 0}),
        bad_layer_option("padding_keys", "same", ValueError, " one of"),
        bad_layer_option("cyclic_shift", -1, ValueError, " an int >= 0"),
        bad_layer_option("inter_pooling", 2, ValueError, " an odd pooling size"),
        bad_layer_option("inter_pooling", 0, ValueError, " an int >= 1"),
        bad_layer_option("qkv_bias", "yes", expected=" a bool"),
    ],
))
