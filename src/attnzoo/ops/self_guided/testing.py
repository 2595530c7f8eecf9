"""Test spec of SG-Former's self-guided attention: one token to 500, one to three significance levels, both
tie-break orders, maps with many exact ties (one value everywhere included) and without."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.self_guided.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    qkv_inputs,
    random_tensor,
    register_spec,
    scale_error_inputs,
)


def significance_map(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> torch.Tensor:
    """``(B, X, Y)`` integer-valued significances, exact in every float dtype: ``levels`` distinct values (ties
    everywhere; 1 is a uniform map), or with ``levels`` 0 a random permutation of ``0 .. N-1`` per sample (no
    ties; steps of 1, so that gradcheck's perturbations never reorder)."""
    b, (x, y) = case["batch"], case["grid"]
    levels = case.get("levels", 0)
    if levels:
        values = torch.randint(0, levels, (b, x * y), generator=generator)
    else:
        values = torch.stack([torch.randperm(x * y, generator=generator) for _ in range(b)])
    return values.reshape(b, x, y).to(dtype=dtype, device=device)


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k ``(B, H, X, Y, D)``, v of ``value_dim``, the significance map, random merge weights and, with
    ``bias``, per-level key and value offsets (std 0.5)."""
    inputs = qkv_inputs(case, dtype, device, generator)
    b, h, levels = case["batch"], case["heads"], len(case["rates"])
    inputs["value"] = random_tensor((b, h, *case["grid"], case.get("value_dim", case["head_dim"])), dtype, device,
                                    generator)
    inputs["significance"] = significance_map(case, dtype, device, generator)
    inputs["pool_weight"] = random_tensor((sum(case["rates"]),), dtype, device, generator)
    if case.get("bias"):
        inputs["key_bias"] = random_tensor((levels, h, case["head_dim"]), dtype, device, generator) * 0.5
        inputs["value_bias"] = random_tensor((levels, h, inputs["value"].shape[-1]), dtype, device, generator) * 0.5
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"group_sizes": case["group_sizes"], "rates": case["rates"],
            "tie_breaks": case.get("tie_breaks", ("row",))}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    grid = (rnd.randint(1, 6), rnd.randint(1, 6))
    n = grid[0] * grid[1]
    levels = min(n, rnd.randint(1, 3))
    cuts = sorted(rnd.sample(range(1, n), levels - 1))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n])]
    rates = [rnd.choice([r for r in range(1, size + 1) if size % r == 0]) for size in sizes]
    heads = rnd.choice([1, 2, 4])
    tie_breaks = rnd.choice([("row",), ("column",)] + ([("row", "column"), ("column", "row")] if heads > 1 else []))
    return {"batch": rnd.randint(1, 3), "heads": heads, "grid": grid, "head_dim": rnd.randint(1, 9),
            "value_dim": rnd.randint(1, 9), "group_sizes": tuple(sizes), "rates": tuple(rates),
            "tie_breaks": tie_breaks, "levels": rnd.choice([0, 1, 2, 4]), "bias": rnd.random() < 0.5}


ERROR_CASE = {"batch": 2, "heads": 2, "grid": (9, 7), "head_dim": 4, "group_sizes": (16, 31, 16), "rates": (4, 1, 2),
              "tie_breaks": ("row", "column"), "bias": True}

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 1, "grid": (1, 1), "head_dim": 8, "group_sizes": (1,), "rates": (1,)},
        {"batch": 3, "heads": 2, "grid": (9, 7), "head_dim": 60, "group_sizes": (16, 31, 16), "rates": (4, 1, 2),
         "tie_breaks": ("row", "column"), "levels": 3, "bias": True},
        {"batch": 1, "heads": 4, "grid": (24, 21), "head_dim": 8, "group_sizes": (126, 252, 126),
         "rates": (42, 12, 6), "tie_breaks": ("row", "column"), "levels": 5, "bias": True},
        {"batch": 1, "heads": 2, "grid": (20, 25), "head_dim": 60, "value_dim": 7, "group_sizes": (250, 250),
         "rates": (2, 1), "tie_breaks": ("column",)},
        {"batch": 2, "heads": 2, "grid": (8, 8), "head_dim": 8, "group_sizes": (16, 32, 16), "rates": (4, 2, 1),
         "tie_breaks": ("row", "column"), "levels": 1, "bias": True},
        {"batch": 2, "heads": 2, "grid": (14, 14), "head_dim": 8, "group_sizes": (98, 98), "rates": (2, 1),
         "tie_breaks": ("row", "column")},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (2, 3), "head_dim": 2, "group_sizes": (2, 4), "rates": (2, 1),
               "tie_breaks": ("row", "column"), "bias": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("query", "key", "value", "significance"),
    layer_input_shape=(2, 8, 8, 32),
    error_inputs=[
        ErrorInput("groups not adding up to the pixels", ValueError, r"group_sizes=\(16, 31, 15\): expected sizes "
                   r"adding up to the X·Y = 9·7 = 63 pixels", options={"group_sizes": (16, 31, 15)}, case=ERROR_CASE),
        ErrorInput("a rate not dividing its group", ValueError, r"rates=\(4, 2, 2\): expected each rate to divide "
                   r"its group's size; group 1 has 31 pixels", options={"rates": (4, 2, 2)}, case=ERROR_CASE),
        ErrorInput("one rate too few", ValueError, r"rates=\(4, 1\): expected one rate per group, 3",
                   options={"rates": (4, 1)}, case=ERROR_CASE),
        bad_option("group_sizes", (0, 47, 16), ValueError, " a non-empty sequence of ints >= 1", case=ERROR_CASE),
        bad_option("rates", (4.0, 1, 2), expected=" a non-empty sequence of ints >= 1", case=ERROR_CASE),
        bad_option("tie_breaks", ("diagonal",), expected=" a non-empty sequence of ('row', 'column')",
                   case=ERROR_CASE),
        bad_option("tie_breaks", "row", expected=" a non-empty sequence of ('row', 'column')", case=ERROR_CASE),
        bad_option("tie_breaks", ("row", "column", "row"), ValueError, " a number of head groups dividing the 2 "
                   "heads", case=ERROR_CASE),
        ErrorInput("significance without its batch dim", ValueError, r"significance has shape \(9, 7\); expected "
                   r"\(B, X, Y\) = \(2, 9, 7\)", inputs=lambda x: {**x, "significance": x["significance"][0]},
                   case=ERROR_CASE),
        ErrorInput("boolean significance", TypeError, "significance.dtype=torch.bool",
                   inputs=lambda x: {**x, "significance": x["significance"] > 3}, case=ERROR_CASE),
        ErrorInput("merge weights of the wrong length", ValueError, r"pool_weight has shape \(6,\); expected \(7,\)",
                   inputs=lambda x: {**x, "pool_weight": x["pool_weight"][:-1]}, case=ERROR_CASE),
        ErrorInput("key offsets without the level dim", ValueError, r"key_bias has shape \(2, 4\); expected "
                   r"\(3, 2, 4\)", inputs=lambda x: {**x, "key_bias": x["key_bias"][0]}, case=ERROR_CASE),
        *scale_error_inputs(case=ERROR_CASE),
    ],
    # the official stage-1 block of SG-Former-S (56 x 56, 2 heads of 32, sr 8: rates 196 / 56 / 28, 60 keys)
    benchmark_case={"batch": 1, "heads": 2, "grid": (56, 56), "head_dim": 32, "group_sizes": (784, 1568, 784),
                    "rates": (196, 56, 28), "tie_breaks": ("row", "column")},
    layer_error_inputs=[
        bad_layer_option("rates", (4, 2.0, 1), expected=" a non-empty sequence of ints >= 1"),
        bad_layer_option("split", "121", expected=" a non-empty sequence of ints >= 1"),
        LayerErrorInput("rates and split of different lengths", ValueError, r"rates=\(4, 2\): expected one rate "
                        r"per group of split=\(1, 2, 1\)", {"rates": (4, 2)}),
        LayerErrorInput("odd heads", ValueError, "num_heads=3: expected an even number", {"dim": 30, "num_heads": 3}),
    ],
))
