"""Registry entry of SG-Former's hybrid-scale attention (arXiv 2308.12216)."""

from __future__ import annotations

import math
from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.fitting import grid_block
from attnzoo.layers.hybrid_scale import HybridScaleAttention
from attnzoo.ops.hybrid_scale.functional import VARIANT_NAME, hybrid_scale_attention
from attnzoo.ops.hybrid_scale.reference import hybrid_scale_reference
from attnzoo.ops.hybrid_scale.windowed import hybrid_scale_windowed
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Paper, Variant, register

SG_FORMER = Paper("SG-Former: Self-guided Transformer with Evolving Token Reallocation", 2023, "2308.12216", 56)


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """Local windows of about ``extent`` tokens that tile the grid, and the global keys reduced until the reduced
    map is one window wide (the official proportions: 56 / 8 = 7 = the window)."""
    window = grid_block(grid, extent)
    return {"window_size": window, "sr_ratio": math.gcd(*grid) // window}


register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=SG_FORMER,
    layout=GRID_2D,
    summary="SG-Former hybrid-scale attention: head groups attend to keys reduced s x s in windows of M "
            "(global: one window; local: s = 1), and the attention each key receives is the significance map",
    op=hybrid_scale_attention,
    implementations={
        "windowed": Implementation("windowed", hybrid_scale_windowed, CUSTOM_BACKWARD,
                                   "query windows of M*s, key windows of M, one batched SDPA (GEMMs + softmax "
                                   "when the significance is returned); O(N * M^2)"),
        "reference": Implementation("reference", hybrid_scale_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense N x N/s^2 scores + explicit window mask (oracle)"),
    },
    layer=HybridScaleAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "sr_ratio": 2, "window_size": 4},
    fit_options=fit_options,
))
