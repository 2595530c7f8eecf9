"""Registry entries of the kernel / agent members of the linear family: kernelized attention with RPE (paper 41),
SOFT (paper 42) and agent attention (paper 12)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.catalog.common import REFERENCE, TILED, case_future_mask, qkv_inputs, random_tensor
from attnzoo.layers.agent import AgentAttention
from attnzoo.layers.kernelized import KernelizedRPEAttention
from attnzoo.layers.soft import SoftAttention
from attnzoo.ops.agent import functional as agent
from attnzoo.ops.agent.gemm import agent_gemm
from attnzoo.ops.agent.reference import agent_reference
from attnzoo.ops.kernelized import functional as kernelized
from attnzoo.ops.kernelized.fft import kernelized_fft
from attnzoo.ops.kernelized.reference import kernelized_reference
from attnzoo.ops.soft import functional as soft
from attnzoo.ops.soft.newton import soft_newton
from attnzoo.ops.soft.reference import soft_reference
from attnzoo.registry import Implementation, Paper, Variant, register

Case = Mapping[str, Any]

KERNELIZED_FFT = replace(TILED, auto_min_length=4096)
"""``auto`` takes the FFT path from 4096 tokens on: below, the dense reference is faster on CPU. Measured forward
+ backward, 4 heads, head dim 16, 1 thread, time of reference / fft: causal 0.03 / 0.19 / 0.55 and non-causal
0.2 / 0.28 / 1.64 at N = 256 / 1024 / 4096 (the causal divide-and-conquer FFT overtakes later, but the dense
form's O(N²) memory no longer fits at 16k)."""


# ---- kernelized attention with RPE (paper 41) ----

def _kernelized_inputs(case: Case, dtype: torch.dtype, device: str,
                       generator: torch.Generator) -> dict[str, torch.Tensor]:
    """q, k, v ``(B, H, N, D)``, RPE logits ``(H, 2N - 1)`` (std 0.5) and, for random features, ``W`` ``(D, m)``."""
    inputs = qkv_inputs(case, dtype, device, generator)
    inputs["rpe"] = random_tensor((case["heads"], 2 * case["grid"][0] - 1), dtype, device, generator) * 0.5
    if case.get("feature_map", "softmax_kernel") == "softmax_kernel":
        inputs["projection"] = random_tensor((case["head_dim"], case["features"]), dtype, device, generator)
    return inputs


def _kernelized_options(case: Case) -> dict[str, Any]:
    return {"feature_map": case.get("feature_map", "softmax_kernel"), "is_causal": case.get("is_causal", False),
            "normalize": case.get("normalize", True), "block_size": case.get("block_size", 64)}


def _kernelized_random_case(rnd: random.Random) -> dict[str, Any]:
    feature_map, normalize = rnd.choice([("softmax_kernel", True), ("elu", True), ("identity", False),
                                         ("relu", False), ("softmax_kernel", False)])
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 24),),
            "head_dim": rnd.randint(1, 9), "features": rnd.randint(1, 6), "feature_map": feature_map,
            "normalize": normalize, "is_causal": rnd.random() < 0.5, "block_size": rnd.randint(1, 8)}



register(Variant(
    name=kernelized.VARIANT_NAME,
    family="linear",
    paper=Paper("Stable, Fast and Accurate: Kernelized Attention with Relative Positional Encoding", 2021,
                "2106.12566", 41),
    layout=kernelized.LAYOUT,
    summary="random-feature (Performer) attention times a Toeplitz RPE matrix exp(b_{i-j}) applied by FFT in "
            "O(N log N); causal (exactly, divide-and-conquer FFT) or not; optional normaliser",
    op=kernelized.kernelized_rpe_attention,
    implementations={
        "fft": Implementation("fft", kernelized_fft, KERNELIZED_FFT,
                              "Toeplitz x (phi(k) v^T, phi(k)) by FFT; O(N log N m Dv) time, O(N m Dv) memory"),
        "reference": Implementation("reference", kernelized_reference, REFERENCE,
                                    "dense (phi(Q) phi(K)^T * C) V with the materialised Toeplitz C (oracle)"),
    },
    layer=KernelizedRPEAttention,
    layer_layout="(B, N, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "max_len": 128},
    layer_input_shape=(2, 50, 32),
    cases=[
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "features": 4, "is_causal": True},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "features": 16, "is_causal": True, "block_size": 16},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "features": 16, "is_causal": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "features": 8},
        {"batch": 2, "heads": 1, "grid": (63,), "head_dim": 8, "feature_map": "identity", "normalize": False,
         "is_causal": True, "block_size": 4},
        {"batch": 1, "heads": 2, "grid": (63,), "head_dim": 60, "feature_map": "elu"},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (5,), "head_dim": 2, "features": 3, "is_causal": True,
               "block_size": 2},
    make_inputs=_kernelized_inputs,
    options=_kernelized_options,
    random_case=_kernelized_random_case,
    future_mask=case_future_mask(False),
))


# ---- SOFT (paper 42) ----

def _soft_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
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


def _soft_options(case: Case) -> dict[str, Any]:
    return {"newton_iters": case.get("newton_iters", 20)}


def _soft_random_case(rnd: random.Random) -> dict[str, Any]:
    n = rnd.randint(1, 24)
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (n,), "head_dim": rnd.randint(1, 9),
            "ratio": rnd.randint(1, n)}


register(Variant(
    name=soft.VARIANT_NAME,
    family="linear",
    paper=Paper("SOFT: Softmax-free Transformer with Linear Complexity", 2021, "2110.11945", 42),
    layout=soft.LAYOUT,
    summary="Gaussian-kernel attention with K = Q, Nystrom through convolutional landmarks, Newton-Schulz "
            "inverse of the landmark kernel (20 steps), no softmax; O(N M D + M^3)",
    op=soft.soft_attention,
    implementations={
        "newton": Implementation("newton", soft_newton, TILED,
                                 "A (Newton inverse) (A^T V) right to left, analytic inverse backward; no N x N"),
        "reference": Implementation("reference", soft_reference, REFERENCE,
                                    "dense N x N Nystrom matrix with torch.linalg.inv (oracle)"),
    },
    layer=SoftAttention,
    layer_layout="(B, H, W, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "sr_ratio": 2},
    layer_input_shape=(2, 8, 6, 32),
    cases=[
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "ratio": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "ratio": 4},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "ratio": 8},
        {"batch": 1, "heads": 1, "grid": (500,), "head_dim": 60, "ratio": 16},
        {"batch": 2, "heads": 2, "grid": (63,), "head_dim": 8, "ratio": 63},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (6,), "head_dim": 3, "ratio": 2},
    make_inputs=_soft_inputs,
    options=_soft_options,
    random_case=_soft_random_case,
    batched_inputs=("query", "value", "landmarks"),
))


# ---- agent attention (paper 12) ----

def _agent_inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """q, k, v ``(B, H, N, D)``, agents ``(B, H, M, D)`` and, with ``bias``, both bias tables (std 0.5)."""
    inputs = qkv_inputs(case, dtype, device, generator)
    b, h, n, m = case["batch"], case["heads"], case["grid"][0], case["agents"]
    inputs["agents"] = random_tensor((b, h, m, case["head_dim"]), dtype, device, generator)
    if case.get("bias"):
        inputs["agent_bias"] = random_tensor((h, m, n), dtype, device, generator) * 0.5
        inputs["query_bias"] = random_tensor((h, n, m), dtype, device, generator) * 0.5
    return inputs


def _agent_random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 24),),
            "head_dim": rnd.randint(1, 9), "agents": rnd.randint(1, 9), "bias": rnd.random() < 0.5}


register(Variant(
    name=agent.VARIANT_NAME,
    family="linear",
    paper=Paper("Agent Attention: On the Integration of Softmax and Linear Attention", 2024, "2312.08874", 12),
    layout=agent.LAYOUT,
    summary="M agent tokens pooled from the queries: softmax(Q A^T s + B2) softmax(A K^T s + B1) V with agent "
            "biases (+ depthwise conv on V in the layer); O(N M D)",
    op=agent.agent_attention,
    implementations={
        "gemm": Implementation("gemm", agent_gemm, TILED,
                               "agents aggregate V, queries read the agents: two SDPA calls, O(N M D)"),
        "reference": Implementation("reference", agent_reference, REFERENCE,
                                    "explicit softmaxes and their N x N product (oracle)"),
    },
    layer=AgentAttention,
    layer_layout="(B, H, W, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "resolution": (8, 6), "agent_num": 9},
    layer_input_shape=(2, 8, 6, 32),
    cases=[
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "agents": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "agents": 49, "bias": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "agents": 49, "bias": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 60, "agents": 9},
        {"batch": 2, "heads": 2, "grid": (63,), "head_dim": 8, "agents": 100, "bias": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (5,), "head_dim": 2, "agents": 3, "bias": True},
    make_inputs=_agent_inputs,
    random_case=_agent_random_case,
    batched_inputs=("query", "key", "value", "agents"),
))
