"""Test spec of kernelized attention with RPE: feature maps, normalisers, causal blocks of every size."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.kernelized.functional import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, bad_option, case_future_mask, \
    dropin_options, flag_error_inputs, int_error_inputs, qkv_inputs, random_tensor, register_spec


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    """q, k, v ``(B, H, N, D)``, RPE logits ``(H, 2N - 1)`` (std 0.5) and, for random features, ``W`` ``(D, m)``."""
    inputs = qkv_inputs(case, dtype, device, generator)
    inputs["rpe"] = random_tensor((case["heads"], 2 * case["grid"][0] - 1), dtype, device, generator) * 0.5
    if case.get("feature_map", "softmax_kernel") == "softmax_kernel":
        inputs["projection"] = random_tensor((case["head_dim"], case["features"]), dtype, device, generator)
    return inputs


def _without_projection(inputs: Inputs) -> Inputs:
    return {name: t for name, t in inputs.items() if name != "projection"}


def _options(case: Case) -> dict[str, Any]:
    return {"feature_map": case.get("feature_map", "softmax_kernel"), "is_causal": case.get("is_causal", False),
            "normalize": case.get("normalize", True), "block_size": case.get("block_size", 64),
            **dropin_options(case)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    feature_map, normalize = rnd.choice([("softmax_kernel", True), ("elu", True), ("identity", False),
                                         ("relu", False), ("softmax_kernel", False)])
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 24),),
            "head_dim": rnd.randint(1, 9), "features": rnd.randint(1, 6), "feature_map": feature_map,
            "normalize": normalize, "is_causal": rnd.random() < 0.5, "block_size": rnd.randint(1, 8)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "features": 4, "is_causal": True},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "features": 16, "is_causal": True, "block_size": 16},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "features": 16, "is_causal": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "features": 8},
        {"batch": 2, "heads": 1, "grid": (63,), "head_dim": 8, "feature_map": "identity", "normalize": False,
         "is_causal": True, "block_size": 4},
        {"batch": 1, "heads": 2, "grid": (63,), "head_dim": 60, "feature_map": "elu"},
        # drop-in features: grouped KV heads, key padding (causal: some queries see only padded keys)
        {"batch": 2, "heads": 4, "kv_heads": 2, "grid": (63,), "head_dim": 8, "features": 8, "is_causal": True,
         "block_size": 8, "key_padding": True},
        {"batch": 3, "heads": 2, "grid": (40,), "head_dim": 8, "features": 8, "key_padding": True},
        {"batch": 2, "heads": 3, "kv_heads": 1, "grid": (30,), "head_dim": 8, "feature_map": "elu",
         "key_padding": True},
        {"batch": 2, "heads": 2, "kv_heads": 1, "grid": (33,), "head_dim": 8, "feature_map": "identity",
         "normalize": False, "is_causal": True, "block_size": 4, "key_padding": True},
    ],
    tiny_case={"batch": 1, "heads": 1, "grid": (5,), "head_dim": 2, "features": 3, "is_causal": True,
               "block_size": 2},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(False),
    layer_input_shape=(2, 50, 32),
    error_inputs=[
        ErrorInput("rpe of the wrong length", ValueError, "rpe has shape",
                   inputs=lambda x: {**x, "rpe": x["rpe"][:, :1]},
                   case={"batch": 1, "heads": 2, "grid": (6,), "head_dim": 4, "features": 3}),
        ErrorInput("unknown feature map", ValueError, "feature_map", options={"feature_map": "gelu"}),
        *flag_error_inputs("is_causal", "normalize"),
        *int_error_inputs("block_size"),
        # num_features and seed draw the projection: checked when none is given
        bad_option("num_features", 3.0, inputs=_without_projection),
        bad_option("seed", 0.5, expected=" an int >= 0", inputs=_without_projection),
    ],
    layer_error_inputs=[bad_layer_option("max_len", 1.5, expected=" an int >= 1")],
))
