"""Registry entries of neighborhood attention 1-D / 2-D / 3-D (arXiv 2403.04690)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD, FLEX_COMPILED, NATIVE_CPU
from attnzoo.layers.neighborhood import NeighborhoodAttention1D, NeighborhoodAttention2D, NeighborhoodAttention3D
from attnzoo.ops.neighborhood.flex import neighborhood_flex
from attnzoo.ops.neighborhood.functional import (
    VARIANT_NAMES,
    neighborhood_attention_1d,
    neighborhood_attention_2d,
    neighborhood_attention_3d,
)
from attnzoo.ops.neighborhood.native import neighborhood_native
from attnzoo.ops.neighborhood.reference import neighborhood_reference
from attnzoo.ops.neighborhood.tiled import neighborhood_tiled
from attnzoo.registry import GRID_2D, GRID_3D, IMAGE, SEQUENCE, TOKENS, VOLUME, Implementation, Paper, Variant, register

PAPER = Paper("Faster Neighborhood Attention: Reducing the O(n^2) Cost of Self Attention at the Threadblock Level",
              2024, "2403.04690", 2)

NEIGHBORHOOD_TILED = replace(CUSTOM_BACKWARD, auto_max_coverage=0.2, features=CUSTOM_BACKWARD.features | {"gqa"})
"""The tiled kernel, which ``auto`` passes over when a neighbourhood covers more than 20% of the grid (e.g. 5x5
on 7x7): there the dense masked reference is as fast or faster. Measured forward + backward, 2-D NA, 4 heads,
head dim 16, 2 threads, time of reference / tiled: 0.48 at 7x7 k5 (51%), 0.83 at 10x10 k5 (25%), 1.0 at 14x14
k7 (25%), 1.8 at 14x14 k5 (13%), 5.2 at 20x20 k7 (12%), 13 at 28x28 k7 (6%). Of the drop-in features it runs
grouped KV heads (repeated to the query's heads)."""

NEIGHBORHOOD_REFERENCE = replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features
                                 | {"gqa", "key_padding", "attn_mask", "dropout", "weights"})
"""The oracle: every drop-in feature on the flattened grid but keys of another grid (``cross``) and packed
sequences (``varlen``), which have no meaning on one grid."""

_OPS = {1: neighborhood_attention_1d, 2: neighborhood_attention_2d, 3: neighborhood_attention_3d}
_LAYERS = {1: NeighborhoodAttention1D, 2: NeighborhoodAttention2D, 3: NeighborhoodAttention3D}
_LAYOUTS = {1: (SEQUENCE, TOKENS), 2: (GRID_2D, IMAGE), 3: (GRID_3D, VOLUME)}


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """A neighbourhood of ``extent`` tokens per axis, made odd (centred on the query)."""
    return {"kernel_size": extent | 1}


for _ndim in (1, 2, 3):
    register(Variant(
        name=VARIANT_NAMES[_ndim],
        family="local",
        paper=PAPER,
        layout=_LAYOUTS[_ndim][0],
        summary=f"{_ndim}-D neighborhood attention: k nearest keys per axis, inward-shifted at borders; "
                "dilation, per-axis causal, relative position bias",
        op=_OPS[_ndim],
        implementations={
            "native": Implementation("native", neighborhood_native, NATIVE_CPU,
                                     "fused C++ kernel: blocks of 8 queries, one a lane, against keys transposed "
                                     "once (AVX2 or generic, chosen at run time); O(N * (window + D)) memory"),
            "tiled": Implementation("tiled", neighborhood_tiled, NEIGHBORHOOD_TILED,
                                    "query tiles x gathered key regions as batched GEMMs; O(N * region) memory"),
            "flex": Implementation("flex", neighborhood_flex, FLEX_COMPILED,
                                   "compiled FlexAttention with the shared mask"),
            "reference": Implementation("reference", neighborhood_reference, NEIGHBORHOOD_REFERENCE,
                                        "dense scores + explicit N x N mask (oracle); masks, padding, GQA, "
                                        "dropout, weights"),
        },
        causal=True,
        layer=_LAYERS[_ndim],
        layer_layout=_LAYOUTS[_ndim][1],
        layer_defaults={"dim": 32, "num_heads": 4, "kernel_size": 5},
        compare_default=_ndim == 2,
        fit_options=fit_options,
    ))
