"""Registry entry of kernelized attention with relative positional encoding (arXiv 2106.12566)."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, FULL_PRECISION
from attnzoo.layers.kernelized import KernelizedRPEAttention
from attnzoo.ops.kernelized.fft import kernelized_fft
from attnzoo.ops.kernelized.functional import VARIANT_NAME, kernelized_rpe_attention
from attnzoo.ops.kernelized.reference import kernelized_reference
from attnzoo.registry import FLOAT_DTYPES, SEQUENCE, TOKENS, Implementation, Paper, Variant, register

_DROP_IN = AUTOGRAD_ANY_FLOAT.features | {"gqa", "key_padding"}
"""Grouped KV heads and key padding, run the same way by both forms (:func:`.reference.kernel_features`)."""

KERNELIZED_FFT = replace(AUTOGRAD_ANY_FLOAT, dtypes=FULL_PRECISION, auto_min_length=4096, features=_DROP_IN)
"""``torch.fft`` has no half-precision transforms of arbitrary length. ``auto`` takes the FFT path from 4096 tokens
on: below, the dense reference is faster on CPU. Measured forward + backward, 4 heads, head dim 16, 1 thread, time
of reference / fft: causal 0.03 / 0.19 / 0.55 and non-causal 0.2 / 0.28 / 1.64 at N = 256 / 1024 / 4096 (the
causal divide-and-conquer FFT overtakes later, but the dense form's O(N²) memory no longer fits at 16k)."""

KERNELIZED_REFERENCE = replace(AUTOGRAD_ANY_FLOAT, dtypes=FLOAT_DTYPES - {torch.float16}, features=_DROP_IN)
"""No float16: the positive random features exp(w·x - |x|²/2) leave float16's range (NaN at N = 63, head dim 60
with N(0, 1) inputs); bfloat16 keeps float32's range and agrees with the float64 oracle to 2e-2."""

register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("Stable, Fast and Accurate: Kernelized Attention with Relative Positional Encoding", 2021,
                "2106.12566", 41),
    layout=SEQUENCE,
    summary="random-feature (Performer) attention times a Toeplitz RPE matrix exp(b_{i-j}) applied by FFT in "
            "O(N log N); causal (exactly, divide-and-conquer FFT) or not; optional normaliser",
    op=kernelized_rpe_attention,
    implementations={
        "fft": Implementation("fft", kernelized_fft, KERNELIZED_FFT,
                              "Toeplitz x (phi(k) v^T, phi(k)) by FFT; O(N log N m Dv) time, O(N m Dv) memory"),
        "reference": Implementation("reference", kernelized_reference, KERNELIZED_REFERENCE,
                                    "dense (phi(Q) phi(K)^T * C) V with the materialised Toeplitz C (oracle)"),
    },
    causal=True,
    layer=KernelizedRPEAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4, "max_len": 128},
    size_options={"max_len": math.prod},  # the RPE table covers offsets |t| < max_len
))
