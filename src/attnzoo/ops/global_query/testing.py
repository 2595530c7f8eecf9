"""Test spec of GC ViT global query attention: global and per-token queries, one window and many, the bias."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.global_query.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    qkv_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)
from attnzoo.validation import per_axis


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """Keys and values on the case's ``grid``; with ``global`` (the default) the query covers one window."""
    inputs = qkv_inputs(case, dtype, device, generator)
    window = per_axis(case["window_size"], 2, "window_size")
    if case.get("global", True):
        inputs["query"] = random_tensor((case["batch"], case["heads"], *window, case["head_dim"]), dtype, device,
                                        generator)
    if case.get("rpb"):
        inputs["rpb"] = random_tensor((case["heads"], *(2 * w - 1 for w in window)), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"window_size": case["window_size"]}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    window = (rnd.randint(1, 4), rnd.randint(1, 4))
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "head_dim": rnd.randint(1, 9),
            "grid": tuple(w * rnd.randint(1, 3) for w in window), "window_size": window,
            "global": rnd.random() < 0.75, "rpb": rnd.random() < 0.5}


def _query_of(shape: tuple[int, ...]):  # noqa: ANN202
    return lambda i: {**i, "query": torch.zeros(shape, dtype=i["key"].dtype)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 2, "grid": (14, 14), "head_dim": 8, "window_size": 7, "rpb": True},
        {"batch": 3, "heads": 1, "grid": (8, 12), "head_dim": 60, "window_size": 4, "rpb": True},
        {"batch": 1, "heads": 2, "grid": (6, 10), "head_dim": 8, "window_size": (3, 5)},
        {"batch": 2, "heads": 2, "grid": (7, 7), "head_dim": 8, "window_size": 7, "rpb": True},
        {"batch": 1, "heads": 1, "grid": (1, 16), "head_dim": 60, "window_size": (1, 8), "rpb": True},
        {"batch": 2, "heads": 2, "grid": (9, 12), "head_dim": 8, "window_size": 3, "rpb": True, "global": False},
        {"batch": 1, "heads": 2, "grid": (20, 25), "head_dim": 8, "window_size": 5, "rpb": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (4, 6), "head_dim": 2, "window_size": (2, 3), "rpb": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    layer_input_shape=(2, 8, 12, 32),
    benchmark_case={"batch": 1, "heads": 2, "grid": (56, 56), "head_dim": 32, "window_size": 7, "rpb": True},
    error_inputs=[
        ErrorInput("window not dividing the grid", ValueError, r"window_size=5: the grid \(X, Y\) = \(14, 14\) "
                   "must be divisible", options={"window_size": 5}, inputs=_query_of((1, 2, 5, 5, 8))),
        ErrorInput("query neither one window nor the grid", ValueError, r"query has shape \(1, 2, 7, 14, 8\); "
                   r"expected the global queries of one window \(B, H, wx, wy, D\) = \(1, 2, 7, 7, 8\), or one "
                   r"query per token \(1, 2, 14, 14, 8\)", inputs=_query_of((1, 2, 7, 14, 8))),
        ErrorInput("bias table of the wrong window", ValueError, r"rpb has shape \(2, 11, 11\); expected "
                   r"\(2, 13, 13\)", inputs=lambda i: {**i, "rpb": i["rpb"][:, :11, :11]}),
        ErrorInput("zero window", ValueError, "window_size", options={"window_size": 0}),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[
        LayerErrorInput("resolution not window * 2**L", ValueError, r"resolution=\(12, 12\) and window_size=\(5, "
                        r"5\): the global query generator halves the grid L times",
                        {"resolution": (12, 12), "window_size": 5}),
        LayerErrorInput("axes halved a different number of times", ValueError, r"resolution=\(8, 12\) and "
                        r"window_size=\(4, 3\): .* one L >= 0", {"window_size": (4, 3)}),
        LayerErrorInput("window larger than the map", ValueError, r"resolution=\(8, 12\) and window_size=\(16, "
                        r"24\)", {"window_size": (16, 24)}),
        bad_layer_option("local_block", "yes", expected=" a bool"),
        bad_layer_option("rel_pos_bias", 1, expected=" a bool"),
        bad_layer_option("resolution", (8, 12.0), expected=" an int or a sequence of 2 ints"),
    ],
))
