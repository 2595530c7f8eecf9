"""Test spec of routing attention: shared and separately routed queries and keys, causal or not, one cluster to
more clusters than fit, windows from 1 to N, overlapping clusters, exact ties (duplicated tokens and centroids),
the commitment loss, and the bad inputs (window, centroids, flags)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.ops.routing.functional import VARIANT_NAME
from attnzoo.testing import (
    Case,
    ErrorInput,
    Inputs,
    OpTestSpec,
    bad_layer_option,
    bad_option,
    flag_error_inputs,
    int_error_inputs,
    random_tensor,
    register_spec,
    same_token_future,
    scale_error_inputs,
)


def routing_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """``query``, ``key``, ``value`` ``(batch, heads, N, head_dim)`` (``key`` a copy of ``query`` with
    ``shared_qk``) and unit ``centroids`` ``(heads, clusters, head_dim)``. ``ties``: every odd token repeats the
    token before it (in the query and key) and centroid 1 repeats centroid 0, so scores tie exactly."""
    b, h, (n,), d = case["batch"], case["heads"], case["grid"], case["head_dim"]
    q, k, v = (random_tensor((b, h, n, d), torch.float64, "cpu", generator) for _ in range(3))
    centroids = F.normalize(random_tensor((h, case["clusters"], d), torch.float64, "cpu", generator), dim=-1)
    if case.get("ties"):
        for x in (q, k):
            x[:, :, 1::2] = x[:, :, 0:n - 1:2]
        if case["clusters"] > 1:
            centroids[:, 1] = centroids[:, 0]
    if case.get("shared_qk"):
        k = q.clone()
    return {name: t.to(dtype=dtype, device=device) for name, t in
            {"query": q, "key": k, "value": v, "centroids": centroids}.items()}


def _options(case: Case) -> dict[str, Any]:
    return {"window": case["window"], "is_causal": case.get("is_causal", False),
            "shared_qk": case.get("shared_qk", False), **({"return_loss": True} if case.get("return_loss") else {})}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    n = rnd.randint(1, 40)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (n,), "head_dim": rnd.randint(1, 9),
            "clusters": rnd.randint(1, 6), "window": rnd.randint(1, n), "is_causal": rnd.random() < 0.6,
            "shared_qk": rnd.random() < 0.5, "ties": rnd.random() < 0.2, "return_loss": rnd.random() < 0.2}


def _case(batch: int, heads: int, n: int, d: int, clusters: int, window: int, causal: bool, shared: bool,
          **extra: Any) -> dict[str, Any]:
    return {"batch": batch, "heads": heads, "grid": (n,), "head_dim": d, "clusters": clusters, "window": window,
            "is_causal": causal, "shared_qk": shared, **extra}


CASES = [
    _case(2, 2, 20, 8, 3, 6, True, True),
    _case(1, 2, 20, 4, 2, 7, True, False),  # the dtype test's case: small, few near-ties to reorder in fp16
    _case(1, 1, 1, 8, 1, 1, True, True),  # one token
    _case(2, 2, 63, 8, 8, 8, True, True),  # K w = N + 1
    _case(1, 2, 63, 60, 4, 16, True, False),
    _case(1, 2, 500, 8, 22, 23, True, True),  # ~ sqrt(N) clusters of N / K
    _case(1, 2, 500, 16, 5, 100, True, False, return_loss=True),
    _case(2, 2, 33, 8, 3, 11, False, True),
    _case(1, 2, 40, 8, 4, 10, False, False, return_loss=True),
    _case(1, 2, 30, 8, 6, 10, True, True),  # K w = 2 N: tokens in several clusters
    _case(1, 2, 25, 8, 1, 25, True, True),  # one cluster of all tokens: dense causal attention
    _case(1, 2, 24, 8, 5, 2, True, False),  # many queries see no key of their cluster
    _case(2, 2, 30, 8, 4, 7, True, True, ties=True),
    _case(1, 2, 30, 8, 4, 7, False, False, ties=True, return_loss=True),
]


def _with_centroids(shape: tuple[int, ...], dtype: torch.dtype | None = None) -> Callable[[Inputs], Inputs]:
    """An ``inputs`` transform replacing the centroids by random ones of ``shape`` (and ``dtype``)."""
    def change(inputs: Inputs) -> Inputs:
        return {**inputs, "centroids": torch.randn(shape, dtype=dtype or inputs["query"].dtype)}

    return change


ERROR_INPUTS = [
    *scale_error_inputs(), *flag_error_inputs("is_causal", "shared_qk", "return_loss"), *int_error_inputs("window"),
    bad_option("window", 21, ValueError, " at most the sequence length N=20"),
    ErrorInput("centroids for 3 heads", ValueError, r"centroids has shape \(3, 3, 8\); expected \(2, 3, 8\)",
               inputs=_with_centroids((3, 3, 8))),
    ErrorInput("centroids of head dim 4", ValueError, r"centroids has shape \(2, 3, 4\); expected \(2, 3, 8\)",
               inputs=_with_centroids((2, 3, 4))),
    ErrorInput("centroids without a head axis", ValueError, r"centroids has shape \(3, 8\); expected \(H, K, D\)",
               inputs=_with_centroids((3, 8))),
    ErrorInput("zero centroids", ValueError, r"centroids has shape \(2, 0, 8\); expected \(H, K, D\) = \(2, K >= 1",
               inputs=_with_centroids((2, 0, 8))),
    ErrorInput("float32 centroids", TypeError, r"centroids.dtype=torch.float32; expected the query's dtype",
               inputs=_with_centroids((2, 3, 8), torch.float32)),
]

register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=CASES,
    tiny_case=_case(1, 2, 6, 3, 2, 3, True, True),
    make_inputs=routing_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=same_token_future(False),
    layer_input_shape=(2, 16, 32),
    error_inputs=ERROR_INPUTS,
    # the workload (4 heads of 64, sqrt(N) clusters of N / sqrt(N), shared QK, causal) at 4k tokens: the
    # registry-wide suite times the dense oracle as its baseline, K w N = 2^26 scores per head here, 2^28 at 16k;
    # the 16k target runs in bench/suites/sparse.py beside causal dense SDPA and routing-transformer
    benchmark_case=_case(1, 4, 4096, 64, 64, 64, True, True),
    layer_error_inputs=[
        bad_layer_option("num_local_heads", 4, ValueError, " fewer than num_heads=4"),
        bad_layer_option("num_local_heads", -1, ValueError, " an int >= 0"),
        bad_layer_option("seq_len", 0, ValueError, " an int >= 1"),
        bad_layer_option("num_clusters", 0, ValueError, " an int >= 1"),
        bad_layer_option("window", 0, ValueError, " an int >= 1"),
        bad_layer_option("window", 17, ValueError, " at most seq_len=16"),
        bad_layer_option("window", 4.0, expected=" an int >= 1"),
        bad_layer_option("local_window", 0, ValueError, " an int >= 1"),
        bad_layer_option("local_window", 4, ValueError, " an odd window when is_causal=False",
                         extra={"is_causal": False}),
        bad_layer_option("decay", 1.5, ValueError, " a real number in [0, 1]"),
        bad_layer_option("decay", -0.1, ValueError, " a finite real number >= 0.0"),
        bad_layer_option("commitment", "1e-4", expected=" a finite real number >= 0.0"),
        bad_layer_option("shared_qk", "yes", expected=" a bool"),
        bad_layer_option("fit_window", 1, expected=" a bool"),
        bad_layer_option("is_causal", "no", expected=" a bool"),
    ],
))
