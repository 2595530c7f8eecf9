"""Registry entries of the convolution / recurrent-memory / learned-kernel members of the linear family:
Fourier-KArAt (paper 20), the LMU memory (paper 53, LMUFormer) and BaseConv (paper 45, Zoology)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch

from attnzoo.catalog.common import REFERENCE, case_future_mask, qkv_inputs, random_tensor
from attnzoo.layers.base_conv import BaseConv
from attnzoo.layers.karat import FourierKArAtAttention
from attnzoo.layers.lmu import LMUMixer
from attnzoo.ops.base_conv import functional as base_conv_ops
from attnzoo.ops.base_conv.direct import causal_conv_direct
from attnzoo.ops.base_conv.fft import causal_conv_fft
from attnzoo.ops.base_conv.reference import causal_conv_reference
from attnzoo.ops.karat import functional as karat_ops
from attnzoo.ops.karat.blocked import karat_blocked
from attnzoo.ops.karat.reference import karat_reference
from attnzoo.ops.lmu import functional as lmu_ops
from attnzoo.ops.lmu.chunked import lmu_chunked
from attnzoo.ops.lmu.fft import lmu_fft
from attnzoo.ops.lmu.recurrent import lmu_recurrent
from attnzoo.ops.lmu.reference import lmu_reference
from attnzoo.registry import Capabilities, Implementation, Paper, Variant, register

# torch.fft has no half-precision transforms of arbitrary length
FFT = Capabilities(devices=frozenset({"cpu", "cuda"}), backward_devices=frozenset({"cpu", "cuda"}),
                   dtypes=frozenset({torch.float32, torch.float64}))



# --- Fourier-KArAt -------------------------------------------------------------------------------------------

def _karat_inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    inputs = qkv_inputs({**case, "grid": (case["length"],)}, dtype, device, generator)
    coef_shape = (case["heads"], case["rank"], case["length"], case["harmonics"])
    inputs["cos_coef"] = random_tensor(coef_shape, dtype, device, generator)
    inputs["sin_coef"] = random_tensor(coef_shape, dtype, device, generator)
    inputs["proj"] = random_tensor((case["heads"], case["length"], case["rank"]), dtype, device, generator)
    return inputs


def _karat_random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 12),
            "head_dim": rnd.randint(1, 9), "rank": rnd.randint(1, 4), "harmonics": rnd.randint(1, 3)}


register(Variant(
    name=karat_ops.VARIANT_NAME,
    family="linear",
    paper=Paper("Kolmogorov-Arnold Attention: Is Learnable Attention Better For Vision Transformers?", 2025,
                "2503.10632", 20),
    layout=karat_ops.LAYOUT,
    summary="learnable low-rank Fourier-basis operator in place of softmax: σ̂(QKᵀ) = W Φ̂(QKᵀ), then σ̂ V",
    op=karat_ops.fourier_karat,
    implementations={
        "blocked": Implementation("blocked", karat_blocked, REFERENCE,
                                  "query blocks, cos/sin features -> GEMMs with the coefficients, h (Wᵀ V), "
                                  "features recomputed in backward: O(N r + block) memory, no N x N σ̂"),
        "reference": Implementation("reference", karat_reference, REFERENCE,
                                    "explicit cos/sin of every harmonic and the N x N σ̂ (oracle)"),
    },
    layer=FourierKArAtAttention,
    layer_layout="(B, N, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "seq_len": 64},
    layer_input_shape=(2, 64, 32),
    cases=[
        {"batch": 1, "heads": 1, "length": 1, "head_dim": 8, "rank": 3, "harmonics": 1},
        {"batch": 3, "heads": 2, "length": 63, "head_dim": 60, "rank": 12, "harmonics": 3},
        {"batch": 1, "heads": 2, "length": 500, "head_dim": 8, "rank": 4, "harmonics": 2},
    ],
    tiny_case={"batch": 1, "heads": 1, "length": 3, "head_dim": 2, "rank": 2, "harmonics": 2},
    make_inputs=_karat_inputs,
    random_case=_karat_random_case,
))


# --- LMU memory ----------------------------------------------------------------------------------------------

def _lmu_inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
                generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"x": random_tensor((case["batch"], case["length"], case["channels"]), dtype, device, generator)}


def _lmu_options(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"order": case["order"], "theta": case["theta"]}


def _lmu_random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "length": rnd.randint(1, 24), "channels": rnd.randint(1, 5),
            "order": rnd.randint(1, 8), "theta": rnd.choice([0.5, 2.0, 7.5, 32.0])}


register(Variant(
    name=lmu_ops.VARIANT_NAME,
    family="linear",
    paper=Paper("LMUFormer: Low Complexity Yet Powerful Spiking Model With Legendre Memory Units", 2024,
                "2402.04882", 53),
    layout=lmu_ops.LAYOUT,
    summary="per-channel Legendre memory m_t = Ā m_(t-1) + B̄ u_t (ZOH, order d, window θ): FFT-parallel for "
            "training, recurrent with explicit state for decoding",
    op=lmu_ops.lmu_memory,
    implementations={
        "chunked": Implementation("chunked", lmu_chunked, REFERENCE,
                                  "Toeplitz GEMM inside 64-token chunks + state carried across chunks, exactly "
                                  "causal, O(N · 64 · d + N d²)"),
        "fft": Implementation("fft", lmu_fft, FFT, "FFT convolution with the impulse response Ā^t B̄, O(N log N) "
                              "(LMUFormer's training form; causal up to roundoff)"),
        "recurrent": Implementation("recurrent", lmu_recurrent, REFERENCE,
                                    "one state update per token (decoding), O(N d²)"),
        "reference": Implementation("reference", lmu_reference, REFERENCE,
                                    "dense Toeplitz operator from explicit matrix powers, O(N² d) (oracle)"),
    },
    layer=LMUMixer,
    layer_layout="(B, N, C)",
    layer_defaults={"dim": 32},
    layer_input_shape=(2, 64, 32),
    cases=[
        {"batch": 1, "length": 1, "channels": 8, "order": 4, "theta": 4.0},
        {"batch": 3, "length": 63, "channels": 60, "order": 12, "theta": 32.0},
        {"batch": 1, "length": 500, "channels": 8, "order": 6, "theta": 128.0},
        {"batch": 2, "length": 63, "channels": 8, "order": 1, "theta": 0.5},
    ],
    tiny_case={"batch": 1, "length": 6, "channels": 2, "order": 3, "theta": 4.0},
    make_inputs=_lmu_inputs,
    options=_lmu_options,
    random_case=_lmu_random_case,
    future_mask=case_future_mask(True),
    batched_inputs=("x",),
))


# --- BaseConv ------------------------------------------------------------------------------------------------

def _base_conv_inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
                      generator: torch.Generator) -> dict[str, torch.Tensor]:
    channels, taps = case["channels"], case["kernel"]
    inputs = {
        "x": random_tensor((case["batch"], case["length"], channels), dtype, device, generator),
        "kernel": random_tensor((channels, taps), dtype, device, generator) * taps ** -0.5,
        "proj_weight": random_tensor((channels, channels), dtype, device, generator) * channels ** -0.5,
        "proj_bias": random_tensor((channels,), dtype, device, generator),
    }
    if case.get("conv_bias"):
        inputs["conv_bias"] = random_tensor((channels,), dtype, device, generator)
    return inputs


def _base_conv_options(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"use_act": case.get("use_act", False)}


def _base_conv_random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "length": rnd.randint(1, 24), "channels": rnd.randint(1, 6),
            "kernel": rnd.randint(1, 30), "use_act": rnd.random() < 0.5, "conv_bias": rnd.random() < 0.5}


register(Variant(
    name=base_conv_ops.VARIANT_NAME,
    family="linear",
    paper=Paper("Zoology: Measuring and Improving Recall in Efficient Language Models", 2023, "2312.04927", 45),
    layout=base_conv_ops.LAYOUT,
    summary="gated causal depthwise convolution y = conv(x) ⊙ (x Wᵀ + b) + x, the gated-convolution baseline "
            "of the recall benchmark",
    op=base_conv_ops.base_conv,
    implementations={
        "direct": Implementation("direct", causal_conv_direct, REFERENCE,
                                 "grouped conv1d with left padding, O(N K) per channel; exactly causal"),
        "fft": Implementation("fft", causal_conv_fft, FFT, "real-FFT causal convolution, O(N log N) per channel "
                              "(long filters; causal up to roundoff)"),
        "reference": Implementation("reference", causal_conv_reference, REFERENCE,
                                    "sum over taps of shifted inputs, the definition (oracle)"),
    },
    layer=BaseConv,
    layer_layout="(B, N, C)",
    layer_defaults={"dim": 32, "l_max": 64, "kernel_size": -1},
    layer_input_shape=(2, 64, 32),
    cases=[
        {"batch": 1, "length": 1, "channels": 8, "kernel": 3, "conv_bias": True},
        {"batch": 3, "length": 63, "channels": 60, "kernel": 63, "use_act": True},
        {"batch": 1, "length": 500, "channels": 8, "kernel": 500},
        {"batch": 2, "length": 500, "channels": 60, "kernel": 3, "conv_bias": True, "use_act": True},
        {"batch": 1, "length": 63, "channels": 8, "kernel": 100},
    ],
    tiny_case={"batch": 1, "length": 5, "channels": 2, "kernel": 4, "conv_bias": True, "use_act": True},
    make_inputs=_base_conv_inputs,
    options=_base_conv_options,
    random_case=_base_conv_random_case,
    future_mask=case_future_mask(True),
    batched_inputs=("x",),
))
