"""Registry entries of the linear family: lightning attention (paper 54) and feature-map linear attention."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch

from attnzoo.catalog.common import REFERENCE, case_future_mask, random_tensor
from attnzoo.layers.linear import LightningAttention, LinearAttention
from attnzoo.ops.lightning import functional as lightning
from attnzoo.ops.linear import feature_linear as linear
from attnzoo.ops.lightning.chunked import decayed_chunked
from attnzoo.ops.lightning.recurrent import decayed_recurrent
from attnzoo.ops.lightning.reference import decayed_reference
from attnzoo.registry import Capabilities, Implementation, Paper, Variant, register

LIGHTNING_PAPER = Paper("Various Lengths, Constant Speed: Efficient Language Modeling with Lightning Attention",
                        2024, "2405.17381", 54)
LINEAR_PAPER = Paper("Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention", 2020,
                     "2006.16236", None)  # the linear-attention baseline papers 41, 42 and 54 build on
AUTOGRAD = Capabilities(devices=frozenset({"cpu", "cuda"}), backward_devices=frozenset({"cpu", "cuda"}))
"""The chunked and recurrent forms are plain PyTorch differentiated by autograd (like the reference)."""
LAYER_DEFAULTS = {"dim": 32, "num_heads": 4}
LAYER_INPUT = (2, 64, 32)


def _implementations(chunked: Any, recurrent: Any, reference: Any) -> dict[str, Implementation]:
    return {
        "chunked": Implementation("chunked", chunked, AUTOGRAD,
                                  "intra-block masked GEMMs + loop-free carried block states; O(N (block + D) E)"),
        "recurrent": Implementation("recurrent", recurrent, AUTOGRAD,
                                    "one token at a time with a D x E state (decoding); O(N D E)"),
        "reference": Implementation("reference", reference, REFERENCE, "dense scores x explicit N x N mask (oracle)"),
    }


def _sequence(case: Mapping[str, Any], dtype: torch.dtype, device: str, generator: torch.Generator,
              state_dim: int, state_extra: int = 0) -> dict[str, torch.Tensor]:
    """``query``, ``key`` ``(B, H, N, D)``, ``value`` ``(B, H, N, E)`` and, if the case asks, an initial state
    ``(B, H, state_dim, E + state_extra)``."""
    b, h, n, d = case["batch"], case["heads"], case["length"], case["head_dim"]
    e = case.get("value_dim", d)
    inputs = {"query": random_tensor((b, h, n, d), dtype, device, generator),
              "key": random_tensor((b, h, n, d), dtype, device, generator),
              "value": random_tensor((b, h, n, e), dtype, device, generator)}
    if case.get("initial_state"):
        inputs["initial_state"] = random_tensor((b, h, state_dim, e + state_extra), dtype, device, generator)
    return inputs



# --- lightning attention -------------------------------------------------------------------------------------

def _lightning_inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
                      generator: torch.Generator) -> dict[str, torch.Tensor]:
    inputs = _sequence(case, dtype, device, generator, case["head_dim"])
    if case.get("decay"):
        # slopes in [0.02, 1]: from almost no decay to λ = 1/e per token
        u = torch.rand(case["heads"], generator=generator, dtype=torch.float64)
        inputs["decay"] = (0.02 + 0.98 * u).to(dtype=dtype, device=device)
    return inputs


def _lightning_options(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"block_size": case.get("block_size", 64)}


def _lightning_random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 40),
            "head_dim": rnd.randint(1, 9), "value_dim": rnd.randint(1, 9), "block_size": rnd.randint(1, 16),
            "decay": rnd.random() < 0.7}


LIGHTNING_CASES = [
    {"batch": 3, "heads": 2, "length": 63, "head_dim": 8, "decay": True, "block_size": 7},
    {"batch": 1, "heads": 1, "length": 1, "head_dim": 8},
    {"batch": 1, "heads": 2, "length": 500, "head_dim": 8, "decay": True},
    {"batch": 1, "heads": 2, "length": 500, "head_dim": 60, "decay": True, "initial_state": True, "block_size": 7},
    {"batch": 3, "heads": 2, "length": 63, "head_dim": 60, "value_dim": 5, "initial_state": True, "block_size": 16},
    {"batch": 1, "heads": 3, "length": 128, "head_dim": 8, "decay": True, "initial_state": True},
    {"batch": 2, "heads": 1, "length": 30, "head_dim": 8, "decay": True, "block_size": 1},
]

register(Variant(
    name=lightning.VARIANT_NAME,
    family="linear",
    paper=LIGHTNING_PAPER,
    layout=lightning.LAYOUT,
    summary="causal decayed linear attention (per-head λ = exp(-slope)): intra-block attention + carried "
            "state; reference / chunked / recurrent with initial and final state",
    op=lightning.lightning_attention,
    implementations=_implementations(decayed_chunked, decayed_recurrent, decayed_reference),
    layer=LightningAttention,
    layer_layout="(B, N, C)",
    layer_defaults=LAYER_DEFAULTS,
    layer_input_shape=LAYER_INPUT,
    cases=LIGHTNING_CASES,
    tiny_case={"batch": 1, "heads": 1, "length": 5, "head_dim": 2, "decay": True, "initial_state": True,
               "block_size": 2},
    make_inputs=_lightning_inputs,
    options=_lightning_options,
    random_case=_lightning_random_case,
    future_mask=case_future_mask(True),
))


# --- feature-map linear attention ----------------------------------------------------------------------------

def _linear_inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    features = case.get("num_features", case["head_dim"])
    inputs = _sequence(case, dtype, device, generator, features, int(case.get("normalize", True)))
    if "initial_state" in inputs and case.get("normalize", True):
        # a carried normaliser Σ φ(k) is positive: keep the denominators away from zero
        state = inputs["initial_state"]
        inputs["initial_state"] = torch.cat([state[..., :-1], state[..., -1:].abs() + 1], dim=-1)
    if case.get("feature_map") == "softmax_kernel":
        inputs["projection"] = random_tensor((case["head_dim"], features), dtype, device, generator)
    return inputs


def _linear_options(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"feature_map": case.get("feature_map", "elu"), "is_causal": case.get("is_causal", True),
            "normalize": case.get("normalize", True), "block_size": case.get("block_size", 64)}


def _linear_random_case(rnd: random.Random) -> dict[str, Any]:
    feature_map = rnd.choice(("elu", "relu", "identity", "softmax_kernel"))
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 40),
            "head_dim": rnd.randint(1, 9), "value_dim": rnd.randint(1, 9), "block_size": rnd.randint(1, 16),
            "feature_map": feature_map, "num_features": rnd.randint(1, 12), "is_causal": rnd.random() < 0.7,
            "normalize": feature_map in ("elu", "softmax_kernel") and rnd.random() < 0.7}


LINEAR_CASES = [
    {"batch": 3, "heads": 2, "length": 63, "head_dim": 8, "block_size": 7},
    {"batch": 1, "heads": 1, "length": 1, "head_dim": 8},
    {"batch": 1, "heads": 2, "length": 500, "head_dim": 60, "feature_map": "softmax_kernel", "num_features": 32,
     "initial_state": True, "block_size": 7},
    {"batch": 1, "heads": 2, "length": 500, "head_dim": 8, "feature_map": "relu", "normalize": False},
    {"batch": 3, "heads": 2, "length": 63, "head_dim": 60, "feature_map": "identity", "normalize": False,
     "initial_state": True, "block_size": 16},
    {"batch": 2, "heads": 2, "length": 63, "head_dim": 8, "value_dim": 5, "is_causal": False,
     "initial_state": True},
    {"batch": 1, "heads": 2, "length": 500, "head_dim": 60, "feature_map": "softmax_kernel", "num_features": 16,
     "is_causal": False},
]

register(Variant(
    name=linear.VARIANT_NAME,
    family="linear",
    paper=LINEAR_PAPER,
    layout=linear.LAYOUT,
    summary="feature-map linear attention φ(Q)φ(K)ᵀV (elu+1, relu, identity, FAVOR+ softmax kernel), causal or "
            "not, normalised or not; reference / chunked / recurrent with state",
    op=linear.linear_attention,
    implementations=_implementations(linear.linear_chunked, linear.linear_recurrent, linear.linear_reference),
    layer=LinearAttention,
    layer_layout="(B, N, C)",
    layer_defaults=LAYER_DEFAULTS,
    layer_input_shape=LAYER_INPUT,
    cases=LINEAR_CASES,
    tiny_case={"batch": 1, "heads": 1, "length": 5, "head_dim": 2, "feature_map": "softmax_kernel",
               "num_features": 3, "initial_state": True, "block_size": 2},
    make_inputs=_linear_inputs,
    options=_linear_options,
    random_case=_linear_random_case,
    future_mask=case_future_mask(True),
))
