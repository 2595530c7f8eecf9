"""Registry entry of SG-Former's self-guided attention (arXiv 2308.12216)."""

from __future__ import annotations

from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.fitting import largest_divisor
from attnzoo.layers.self_guided import SelfGuidedAttention
from attnzoo.ops.hybrid_scale.registration import SG_FORMER
from attnzoo.ops.hybrid_scale.registration import fit_options as hybrid_fit_options
from attnzoo.ops.self_guided.functional import VARIANT_NAME, self_guided_attention
from attnzoo.ops.self_guided.gathered import self_guided_gathered
from attnzoo.ops.self_guided.plan import split_sizes
from attnzoo.ops.self_guided.reference import self_guided_reference
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Variant, register

DEFAULT_RATES = (4, 2, 1)
DEFAULT_SPLIT = (1, 2, 1)


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """The own-significance windows and reduction of the hybrid-scale layer's fit, and per group of the default
    split the largest rate up to the default ``(4, 2, 1)`` that divides it on this grid."""
    sizes = split_sizes(grid[0] * grid[1], DEFAULT_SPLIT)
    rates = tuple(largest_divisor(size, rate) for size, rate in zip(sizes, DEFAULT_RATES))
    return {**hybrid_fit_options(grid, extent), "rates": rates}


register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=SG_FORMER,
    layout=GRID_2D,
    summary="SG-Former self-guided attention: pixels ranked by a significance map are merged r_l -> 1 per level "
            "(coarse where insignificant, fine where significant) into the keys and values all queries attend to",
    op=self_guided_attention,
    implementations={
        "gathered": Implementation("gathered", self_guided_gathered, CUSTOM_BACKWARD,
                                   "stable sort + gather + per-level weighted reshape + one SDPA; "
                                   "O(N log N + N * keys)"),
        "reference": Implementation("reference", self_guided_reference, AUTOGRAD_ANY_FLOAT,
                                    "ranks by pairwise comparison, explicit keys x N pooling matrix, dense "
                                    "attention (oracle)"),
    },
    layer=SelfGuidedAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "rates": DEFAULT_RATES, "split": DEFAULT_SPLIT, "sr_ratio": 2,
                    "window_size": 4},
    fit_options=fit_options,
))
