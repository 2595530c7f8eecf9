"""Test spec of Sparsifiner attention: budgets from one key to all, with and without a class-token row, ranked and
heavily tied connectivity, and the bad budgets, coefficients and bases.

The connectivity ``coef @ basis`` of the cases is exact in every float dtype, so that every dtype selects the same
keys as the float64 reference (a rounding difference at the ``k``-th score would change the keys, not the
accuracy): ``coef`` rows are one-hot, and ``basis`` rows are random permutations of ``0..N-1`` (``"ranked"``: every
row a distinct ranking, no ties, so gradcheck's perturbations change no selection; integers up to 256 are exact
in bfloat16) or random integers in ``[0, 3]`` (``"tied"``: every row full of exact ties, resolved by key index).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.sparsifiner.functional import VARIANT_NAME
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
    scale_error_inputs,
)


def connectivity_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``coef`` ``(B, H, N - g, K)`` one-hot rows and ``basis`` ``(K, N)`` (see the module) for ``case``."""
    b, h, n = case["batch"], case["heads"], case["grid"][0]
    rank, rows = case.get("rank", 3), n - case.get("global_queries", 0)
    if case.get("connectivity", "ranked") == "ranked":
        basis = torch.stack([torch.randperm(n, generator=generator) for _ in range(rank)]).double()
    else:
        basis = torch.randint(0, 4, (rank, n), generator=generator).double()
    chosen = torch.randint(0, rank, (b, h, rows), generator=generator)
    coef = torch.nn.functional.one_hot(chosen, rank).double()
    return {"coef": coef.to(dtype=dtype, device=device), "basis": basis.to(dtype=dtype, device=device)}


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    inputs = qkv_inputs(case, dtype, device, generator)
    if case.get("value_dim"):
        shape = (case["batch"], case["heads"], case["grid"][0], case["value_dim"])
        inputs["value"] = random_tensor(shape, dtype, device, generator)
    return {**inputs, **connectivity_inputs(case, dtype, device, generator)}


def _options(case: Case) -> dict[str, Any]:
    return {"top_k": case["keep"], "global_queries": case.get("global_queries", 0)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    n = rnd.randint(1, 24)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (n,), "head_dim": rnd.randint(1, 9),
            "rank": rnd.randint(1, 4), "keep": rnd.randint(1, n), "global_queries": rnd.randint(0, min(1, n)),
            "connectivity": rnd.choice(["ranked", "tied"])}


def _with(**changes: Any):  # noqa: ANN202
    """An ``inputs`` transform replacing the named inputs (a shape: random values; anything else as is)."""
    def change(inputs: Inputs) -> Inputs:
        new = {name: torch.randn(v, dtype=inputs["query"].dtype) if isinstance(v, tuple) else v
               for name, v in changes.items()}
        return {**inputs, **new}

    return change


CASES = [
    {"batch": 2, "heads": 2, "grid": (63,), "head_dim": 8, "rank": 4, "keep": 16, "global_queries": 1},
    # the dtype case (cases[1]): at most 256 keys, exact in bfloat16
    {"batch": 1, "heads": 3, "grid": (200,), "head_dim": 60, "rank": 25, "keep": 50},
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "rank": 1, "keep": 1},
    {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "rank": 1, "keep": 1, "global_queries": 1},
    {"batch": 2, "heads": 2, "grid": (40,), "head_dim": 8, "rank": 5, "keep": 1, "connectivity": "tied"},
    {"batch": 2, "heads": 2, "grid": (40,), "head_dim": 4, "rank": 5, "keep": 40, "global_queries": 1},
    {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "rank": 62, "keep": 125, "connectivity": "tied",
     "value_dim": 6},
    # several query blocks: 4 heads x 1100 keys leave 953 rows per block of connectivity.BLOCK_ELEMENTS
    {"batch": 1, "heads": 4, "grid": (1100,), "head_dim": 4, "rank": 8, "keep": 110, "global_queries": 1},
]

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (6,), "head_dim": 2, "rank": 2, "keep": 3, "global_queries": 1},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("query", "key", "value", "coef"),
    layer_input_shape=(2, 16, 32),
    # the workload: 4k tokens, 10% of the keys per query, the paper's K = N / 8 basis vectors
    benchmark_case={"batch": 1, "heads": 4, "grid": (4096,), "head_dim": 64, "rank": 512, "keep": 410},
    error_inputs=[
        *int_error_inputs("top_k"), *scale_error_inputs(),
        bad_option("top_k", 64, ValueError, " at most the number of keys N=63"),
        bad_option("global_queries", -1, ValueError, " an int >= 0"),
        bad_option("global_queries", 64, ValueError, " at most the number of queries N=63"),
        bad_option("global_queries", 1.0, expected=" an int >= 0"),
        ErrorInput("coef without the class-token row left out", ValueError,
                   r"coef has shape \(2, 2, 62, 4\); expected \(2, 2, 63, 4\)", options={"global_queries": 0}),
        ErrorInput("coef of another rank than the basis", ValueError,
                   r"coef has shape \(2, 2, 62, 3\); expected \(2, 2, 62, 4\)", inputs=_with(coef=(2, 2, 62, 3))),
        ErrorInput("basis for another length", ValueError, r"basis has shape \(4, 62\); expected \(4, 63\)",
                   inputs=_with(basis=(4, 62))),
        ErrorInput("basis per head", ValueError, r"basis has shape \(2, 4, 63\); expected \(K, N\)",
                   inputs=_with(basis=(2, 4, 63))),
        ErrorInput("coef in float32", TypeError, r"coef.dtype=torch.float32; expected the query's dtype",
                   inputs=lambda i: {**i, "coef": i["coef"].float()}),
        ErrorInput("basis not a tensor", TypeError, r"basis must be a torch.Tensor, got list",
                   inputs=lambda i: {**i, "basis": i["basis"].tolist()}),
    ],
    layer_error_inputs=[
        bad_layer_option("attn_keep_rate", 0.0, ValueError, " a finite real number > 0"),
        bad_layer_option("attn_keep_rate", 1.5, ValueError, " a real number in (0, 1]"),
        bad_layer_option("attn_keep_rate", "0.25", expected=" a finite real number > 0"),
        bad_layer_option("seq_len", 0, ValueError, " an int >= 1"),
        bad_layer_option("reduce_n_factor", 17, ValueError, " at most seq_len=16"),
        bad_layer_option("reduce_c_factor", 9, ValueError, " at most head_dim=8"),
        bad_layer_option("coef_top_k", 3, ValueError, " at most the number of basis vectors K"),
        bad_layer_option("coef_top_k", 0, ValueError, " an int >= 1"),
        bad_layer_option("class_token", 1, expected=" a bool"),
        bad_layer_option("distill_weight", -0.1, ValueError, " a finite real number >= 0"),
        bad_layer_option("basis_threshold", float("nan"), ValueError, " a finite real number >= 0"),
    ],
))
