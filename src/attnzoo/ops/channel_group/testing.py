"""Test spec of DaViT channel group attention: one position, one channel per group, long maps, wide groups."""

from __future__ import annotations

import random
from typing import Any

from attnzoo.ops.channel_group.functional import VARIANT_NAME
from attnzoo.testing import (
    ErrorInput,
    LayerErrorInput,
    OpTestSpec,
    bad_layer_option,
    qkv_inputs,
    register_spec,
    scale_error_inputs,
)


def _random_case(rnd: random.Random) -> dict[str, Any]:
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": (rnd.randint(1, 40),),
            "head_dim": rnd.randint(1, 9)}


register_spec(OpTestSpec(
    variant=VARIANT_NAME,
    cases=[
        {"batch": 1, "heads": 2, "grid": (1,), "head_dim": 8},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60},
        {"batch": 1, "heads": 3, "grid": (500,), "head_dim": 8},
        {"batch": 2, "heads": 1, "grid": (500,), "head_dim": 60},
        {"batch": 2, "heads": 2, "grid": (49,), "head_dim": 1},
    ],
    tiny_case={"batch": 1, "heads": 2, "grid": (6,), "head_dim": 3},
    make_inputs=qkv_inputs,
    random_case=_random_case,
    layer_input_shape=(2, 10, 12, 32),
    benchmark_case={"batch": 1, "heads": 3, "grid": (56 * 56,), "head_dim": 32},
    error_inputs=[
        ErrorInput("value with other channels than the key", ValueError, r"value has shape \(1, 2, 1, 4\); "
                   r"expected the key's shape \(1, 2, 1, 8\)", inputs=lambda i: {**i, "value": i["value"][..., :4]}),
        *scale_error_inputs(),
    ],
    layer_error_inputs=[bad_layer_option("window_size", 2.5, expected=" an int or a sequence of 2 ints"),
                        LayerErrorInput("window_size=0", ValueError, r"window_size=0: every entry must be >= 1",
                                        {"window_size": 0})],
))
