"""Registry entries of neighborhood attention 1-D / 2-D / 3-D (paper 2)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from attnzoo.catalog.common import FLEX, REFERENCE, TILED, case_future_mask, qkv_inputs, random_tensor
from attnzoo.layers.neighborhood import NeighborhoodAttention1D, NeighborhoodAttention2D, NeighborhoodAttention3D
from attnzoo.ops.neighborhood.flex import neighborhood_flex
from attnzoo.ops.neighborhood.functional import LAYOUTS, VARIANT_NAMES, neighborhood_attention_1d, \
    neighborhood_attention_2d, neighborhood_attention_3d
from attnzoo.ops.neighborhood.reference import neighborhood_reference
from attnzoo.ops.neighborhood.tiled import neighborhood_tiled
from attnzoo.registry import Implementation, Paper, Variant, register

PAPER = Paper("Faster Neighborhood Attention: Reducing the O(n^2) Cost of Self Attention at the Threadblock Level",
              2024, "2403.04690", 2)

NEIGHBORHOOD_TILED = replace(TILED, auto_max_coverage=0.2)
"""The tiled kernel, which ``auto`` passes over when a neighbourhood covers more than 20% of the grid (e.g. 5x5
on 7x7): there the dense masked reference is as fast or faster. Measured forward + backward, 2-D NA, 4 heads,
head dim 16, 2 threads, time of reference / tiled: 0.48 at 7x7 k5 (51%), 0.83 at 10x10 k5 (25%), 1.0 at 14x14
k7 (25%), 1.8 at 14x14 k5 (13%), 5.2 at 20x20 k7 (12%), 13 at 28x28 k7 (6%)."""


def _inputs(case: Mapping[str, Any], dtype: torch.dtype, device: str,
            generator: torch.Generator) -> dict[str, torch.Tensor]:
    inputs = qkv_inputs(case, dtype, device, generator)
    if case.get("rpb"):
        kernels = case["kernel_size"] if isinstance(case["kernel_size"], tuple) else (case["kernel_size"],) * len(case["grid"])
        inputs["rpb"] = random_tensor((case["heads"], *(2 * k - 1 for k in kernels)), dtype, device, generator)
    return inputs


def _options(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"kernel_size": case["kernel_size"], "dilation": case.get("dilation", 1),
            "is_causal": case.get("is_causal", False)}



def _random_case(ndim: int):  # noqa: ANN202
    def draw(rnd: random.Random) -> dict[str, Any]:
        grid, kernel, dilation = [], [], []
        for _ in range(ndim):
            length = rnd.randint(1, 24 if ndim == 1 else 9)
            d = rnd.randint(1, max(1, length // 3))
            k = rnd.choice([k for k in range(1, length // d + 1) if k % 2 == 1])
            grid.append(length), kernel.append(k), dilation.append(d)
        return {"batch": rnd.randint(1, 3), "heads": rnd.randint(1, 3), "grid": tuple(grid),
                "head_dim": rnd.randint(1, 9), "kernel_size": tuple(kernel), "dilation": tuple(dilation),
                "is_causal": tuple(rnd.random() < 0.3 for _ in range(ndim)), "rpb": rnd.random() < 0.5}
    return draw


_CASES = {
    1: [
        {"batch": 1, "heads": 1, "grid": (1,), "head_dim": 8, "kernel_size": 1},
        {"batch": 3, "heads": 2, "grid": (63,), "head_dim": 60, "kernel_size": 7, "dilation": 3, "rpb": True},
        {"batch": 1, "heads": 2, "grid": (500,), "head_dim": 8, "kernel_size": 13, "dilation": 2, "is_causal": True},
        {"batch": 1, "heads": 2, "grid": (63,), "head_dim": 8, "kernel_size": 63},
    ],
    2: [
        {"batch": 1, "heads": 2, "grid": (9, 13), "head_dim": 8, "kernel_size": (3, 5), "dilation": (2, 1), "rpb": True},
        {"batch": 3, "heads": 1, "grid": (12, 7), "head_dim": 60, "kernel_size": 7, "is_causal": (True, False)},
        {"batch": 1, "heads": 2, "grid": (1, 23), "head_dim": 8, "kernel_size": (1, 5), "dilation": (1, 4), "rpb": True},
        {"batch": 2, "heads": 2, "grid": (16, 16), "head_dim": 8, "kernel_size": 7, "rpb": True},
    ],
    3: [
        {"batch": 1, "heads": 2, "grid": (5, 6, 7), "head_dim": 8, "kernel_size": 3, "dilation": (1, 2, 1),
         "is_causal": (False, False, True), "rpb": True},
        {"batch": 3, "heads": 1, "grid": (4, 3, 9), "head_dim": 60, "kernel_size": (3, 3, 5)},
    ],
}
_TINY = {
    1: {"batch": 1, "heads": 1, "grid": (6,), "head_dim": 3, "kernel_size": 3, "dilation": 2, "rpb": True},
    2: {"batch": 1, "heads": 1, "grid": (4, 3), "head_dim": 2, "kernel_size": 3, "is_causal": (True, False), "rpb": True},
    3: {"batch": 1, "heads": 1, "grid": (3, 2, 3), "head_dim": 2, "kernel_size": (3, 1, 3), "rpb": True},
}
_OPS = {1: neighborhood_attention_1d, 2: neighborhood_attention_2d, 3: neighborhood_attention_3d}
_LAYERS = {1: NeighborhoodAttention1D, 2: NeighborhoodAttention2D, 3: NeighborhoodAttention3D}
_LAYER_INPUTS = {1: (2, 64, 32), 2: (2, 14, 14, 32), 3: (2, 6, 6, 6, 32)}

for _ndim in (1, 2, 3):
    register(Variant(
        name=VARIANT_NAMES[_ndim],
        family="local",
        paper=PAPER,
        layout=LAYOUTS[_ndim],
        summary=f"{_ndim}-D neighborhood attention: k nearest keys per axis, inward-shifted at borders; "
                "dilation, per-axis causal, relative position bias",
        op=_OPS[_ndim],
        implementations={
            "tiled": Implementation("tiled", neighborhood_tiled, NEIGHBORHOOD_TILED,
                                    "query tiles x gathered key regions as batched GEMMs; O(N * region) memory"),
            "flex": Implementation("flex", neighborhood_flex, FLEX, "compiled FlexAttention with the shared mask"),
            "reference": Implementation("reference", neighborhood_reference, REFERENCE,
                                        "dense scores + explicit N x N mask (oracle)"),
        },
        layer=_LAYERS[_ndim],
        layer_layout="(B, N, C)" if _ndim == 1 else f"(B, {', '.join('XYZ'[:_ndim])}, C)",
        layer_defaults={"dim": 32, "num_heads": 4, "kernel_size": 5},
        layer_input_shape=_LAYER_INPUTS[_ndim],
        cases=_CASES[_ndim],
        tiny_case=_TINY[_ndim],
        make_inputs=_inputs,
        options=_options,
        random_case=_random_case(_ndim),
        future_mask=case_future_mask(False),
    ))
