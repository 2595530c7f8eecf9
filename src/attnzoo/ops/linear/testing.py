"""Test spec of feature-map linear attention: every feature map, causal or not, normalised or not, states."""

from __future__ import annotations

import random
from typing import Any

import torch

from attnzoo.ops.lightning.testing import linear_dropin_error_inputs, random_dropin, sequence_inputs
from attnzoo.ops.linear.feature_linear import VARIANT_NAME
from attnzoo.testing import Case, ErrorInput, Inputs, OpTestSpec, bad_layer_option, bad_option, case_future_mask, \
    dropin_options, flag_error_inputs, int_error_inputs, random_tensor, register_spec


def _inputs(case: Case, dtype: torch.dtype, device: str, generator: torch.Generator) -> Inputs:
    features = case.get("num_features", case["head_dim"])
    inputs = sequence_inputs(case, dtype, device, generator, features, int(case.get("normalize", True)))
    if "initial_state" in inputs and case.get("normalize", True):
        # a carried normaliser Σ φ(k) is positive: keep the denominators away from zero
        state = inputs["initial_state"]
        inputs["initial_state"] = torch.cat([state[..., :-1], state[..., -1:].abs() + 1], dim=-1)
    if case.get("feature_map") == "softmax_kernel":
        inputs["projection"] = random_tensor((case["head_dim"], features), dtype, device, generator)
    return inputs


def _options(case: Case) -> dict[str, Any]:
    return {"feature_map": case.get("feature_map", "elu"), "is_causal": case.get("is_causal", True),
            "normalize": case.get("normalize", True), "block_size": case.get("block_size", 64),
            "output_final_state": case.get("final_state", False), **dropin_options(case)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    feature_map = rnd.choice(("elu", "relu", "identity", "softmax_kernel"))
    return random_dropin(rnd, {
        "batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "length": rnd.randint(1, 40),
        "head_dim": rnd.randint(1, 9), "value_dim": rnd.randint(1, 9), "block_size": rnd.randint(1, 16),
        "feature_map": feature_map, "num_features": rnd.randint(1, 12), "is_causal": rnd.random() < 0.7,
        "normalize": feature_map in ("elu", "softmax_kernel") and rnd.random() < 0.7,
        "final_state": rnd.random() < 0.5})


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 3, "heads": 2, "length": 63, "head_dim": 8, "block_size": 7, "final_state": True},
        {"batch": 1, "heads": 1, "length": 1, "head_dim": 8},
        {"batch": 1, "heads": 2, "length": 500, "head_dim": 60, "feature_map": "softmax_kernel", "num_features": 32,
         "initial_state": True, "block_size": 7, "final_state": True},
        {"batch": 1, "heads": 2, "length": 500, "head_dim": 8, "feature_map": "relu", "normalize": False},
        {"batch": 3, "heads": 2, "length": 63, "head_dim": 60, "feature_map": "identity", "normalize": False,
         "initial_state": True, "block_size": 16},
        {"batch": 2, "heads": 2, "length": 63, "head_dim": 8, "value_dim": 5, "is_causal": False,
         "initial_state": True, "final_state": True},
        {"batch": 1, "heads": 2, "length": 500, "head_dim": 60, "feature_map": "softmax_kernel", "num_features": 16,
         "is_causal": False},
        # drop-in features (attnzoo.ops.lightning.sequences): grouped KV heads with states, key padding after each
        # kind of feature map (elu + 1 and softmax_kernel are positive at a zero key), packed sequences causal and
        # not, and all three at once
        {"batch": 2, "heads": 4, "kv_heads": 2, "length": 40, "head_dim": 8, "value_dim": 5, "initial_state": True,
         "block_size": 7, "final_state": True},
        {"batch": 3, "heads": 2, "length": 45, "head_dim": 8, "key_padding": True, "initial_state": True,
         "block_size": 8, "final_state": True},
        {"batch": 2, "heads": 2, "length": 30, "head_dim": 8, "feature_map": "softmax_kernel", "num_features": 6,
         "is_causal": False, "key_padding": True, "final_state": True},
        {"batch": 1, "heads": 2, "length": 40, "head_dim": 8, "block_size": 6, "varlen": (9, 1, 30)},
        {"batch": 1, "heads": 2, "length": 40, "head_dim": 8, "feature_map": "relu", "normalize": False,
         "is_causal": False, "varlen": (9, 1, 30)},
        {"batch": 1, "heads": 6, "kv_heads": 3, "length": 33, "head_dim": 4, "value_dim": 3, "block_size": 5,
         "feature_map": "softmax_kernel", "num_features": 5, "key_padding": True, "varlen": (12, 21)},
        {"batch": 1, "heads": 4, "kv_heads": 1, "length": 33, "head_dim": 4, "is_causal": False,
         "key_padding": True, "varlen": (12, 21)},
    ],
    tiny_case={"batch": 1, "heads": 1, "length": 5, "head_dim": 2, "feature_map": "softmax_kernel",
               "num_features": 3, "initial_state": True, "block_size": 2, "final_state": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
    future_mask=case_future_mask(True),
    batched_states=("initial_state",),
    layer_input_shape=(2, 64, 32),
    error_inputs=[
        ErrorInput("unknown feature map", ValueError, "feature_map", options={"feature_map": "gelu"}),
        *flag_error_inputs("is_causal", "normalize", "output_final_state"),
        *int_error_inputs("block_size"),
        bad_option("eps", "1e-6"),
        bad_option("eps", -1.0, ValueError),
        bad_option("seed", "0", expected=" an int >= 0", extra={"feature_map": "softmax_kernel"}),
        bad_option("num_features", 3.0, extra={"feature_map": "softmax_kernel"}),
        *linear_dropin_error_inputs(),
    ],
    layer_error_inputs=[
        bad_layer_option("is_causal", "False", expected=" a bool"),
        bad_layer_option("num_features", 1.5, extra={"feature_map": "softmax_kernel"}),
    ],
))
