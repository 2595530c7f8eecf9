"""Test spec of SOFT: well-conditioned landmarks pooled from the queries, every pooling ratio."""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.ops.soft.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, bad_option, random_tensor, \
    register_spec, scale_error_inputs


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """Queries of std ``D^{-1/4}`` (scaled queries of norm ~1), values N(0, 1), and landmarks: the scaled
    queries average-pooled by ``ratio`` plus N(0, 3/D) noise, which keeps the landmark kernel well conditioned
    (the Newton iteration converges in 20 steps; the tests cover the badly conditioned case separately)."""
    n, d = case["grid"][0], case["head_dim"]
    shape = (case["batch"], case["heads"], n, d)
    query = random_tensor(shape, torch.float64, "cpu", generator) * d ** -0.25
    value = random_tensor(shape, torch.float64, "cpu", generator)
    pooled = F.avg_pool1d((query * d ** -0.25).flatten(0, 1).transpose(1, 2), case["ratio"]).transpose(1, 2)
    noise = random_tensor(pooled.shape, torch.float64, "cpu", generator) * (3 / d) ** 0.5
    landmarks = (pooled + noise).unflatten(0, shape[:2])
    return {name: t.to(dtype=dtype, device=device)
            for name, t in (("query", query), ("value", value), ("landmarks", landmarks))}


def _options(case: Case) -> dict[str, Any]:
    return {"newton_iters": case.get("newton_iters", 20)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    """A random case with 60 Newton steps: the paper's 20 leave errors up to 6e-5 against the exact inverse on
    the worst-conditioned draws (many landmarks, head dim 2), which 60 steps take to round-off."""
    n = rnd.randint(1, 24)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (n,), "head_dim": rnd.randint(1, 9),
            "ratio": rnd.randint(1, n), "newton_iters": 60}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "ratio": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "ratio": 4},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "ratio": 8},
        {"batch": 1, "heads": 1, "grid": (500,), "head_dim": 60, "ratio": 16},
        {"batch": 2, "heads": 2, "grid": (63,), "head_dim": 8, "ratio": 63},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (6,), "head_dim": 3, "ratio": 2},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    batched_inputs=("query", "value", "landmarks"),
    layer_input_shape=(2, 8, 6, 32),
    error_inputs=[
        ErrorInput("negative Newton steps", ValueError, "newton_iters", options={"newton_iters": -1}),
        *scale_error_inputs(),
        bad_option("newton_iters", 2.0),
        bad_option("regularizer", "0.01"),
        bad_option("regularizer", float("inf"), ValueError),
        bad_option("regularizer", -1.0, ValueError),
    ],
    layer_error_inputs=[bad_layer_option("sr_ratio", 2.0, expected=" an int >= 1")],
))
