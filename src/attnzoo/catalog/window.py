"""Registry entry of 2-D (shifted) window attention, Swin style (papers 11 DaViT, 14 LaMamba-Diff, 59 GC ViT)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch

from attnzoo.catalog.common import FLEX, REFERENCE, TILED, qkv_inputs, random_tensor
from attnzoo.layers.window import WindowAttention2D
from attnzoo.ops.window.flex import window_flex
from attnzoo.ops.window.functional import LAYOUT, VARIANT_NAME, window_attention_2d
from attnzoo.ops.window.reference import window_reference
from attnzoo.ops.window.windowed import window_windowed
from attnzoo.registry import Implementation, Paper, Variant, register
from attnzoo.validation import per_axis

PAPER = Paper("DaViT: Dual Attention Vision Transformers", 2022, "2204.03645", 11)


def _inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
            generator: torch.Generator) -> dict[str, torch.Tensor]:
    inputs = qkv_inputs(case, dtype, device, generator)
    if case.get("rpb"):
        window = per_axis(case["window_size"], 2, "window_size")
        inputs["rpb"] = random_tensor((case["heads"], *(2 * w - 1 for w in window)), dtype, device, generator)
    return inputs


def _options(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"window_size": case["window_size"], "shift_size": case.get("shift_size", 0)}


def _random_case(rnd: random.Random) -> dict[str, Any]:
    window = (rnd.randint(1, 4), rnd.randint(1, 4))
    return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "head_dim": rnd.randint(1, 9),
            "grid": tuple(w * rnd.randint(1, 3) for w in window), "window_size": window,
            "shift_size": tuple(rnd.randrange(w) for w in window), "rpb": rnd.random() < 0.5}


_CASES = [
    {"batch": 1, "heads": 2, "grid": (9, 12), "head_dim": 8, "window_size": 3, "shift_size": 1, "rpb": True},
    {"batch": 3, "heads": 1, "grid": (8, 12), "head_dim": 60, "window_size": 4, "shift_size": 2, "rpb": True},
    {"batch": 1, "heads": 2, "grid": (6, 10), "head_dim": 8, "window_size": (3, 5), "shift_size": (2, 0)},
    {"batch": 2, "heads": 2, "grid": (7, 7), "head_dim": 8, "window_size": 7, "rpb": True},
    {"batch": 1, "heads": 1, "grid": (1, 16), "head_dim": 60, "window_size": (1, 8), "shift_size": (0, 7),
     "rpb": True},
]

register(Variant(
    name=VARIANT_NAME,
    family="local",
    paper=PAPER,
    layout=LAYOUT,
    summary="Swin (shifted) window attention: w x w windows after a cyclic shift, region mask, relative "
            "position bias table (DaViT, LaMamba-Diff, GC ViT)",
    op=window_attention_2d,
    implementations={
        "windowed": Implementation("windowed", window_windowed, TILED,
                                   "roll + window partition + one batched SDPA; O(N * w^2) memory"),
        "flex": Implementation("flex", window_flex, FLEX, "compiled FlexAttention with the shared mask"),
        "reference": Implementation("reference", window_reference, REFERENCE,
                                    "dense scores + explicit N x N mask (oracle)"),
    },
    layer=WindowAttention2D,
    layer_layout="(B, H, W, C)",
    layer_defaults={"dim": 32, "num_heads": 4, "window_size": 4, "shift_size": 2},
    layer_input_shape=(2, 10, 12, 32),
    cases=_CASES,
    tiny_case={"batch": 1, "heads": 1, "grid": (4, 2), "head_dim": 2, "window_size": 2, "shift_size": 1,
               "rpb": True},
    make_inputs=_inputs,
    options=_options,
    random_case=_random_case,
))
