"""Registry entry of GC ViT global query attention (arXiv 2206.09959)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, NATIVE_CPU
from attnzoo.layers.global_query import GlobalQueryAttention
from attnzoo.ops.global_query.functional import VARIANT_NAME, global_query_attention
from attnzoo.ops.global_query.native import global_query_native
from attnzoo.ops.global_query.reference import global_query_reference
from attnzoo.ops.global_query.windowed import global_query_windowed
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Paper, Variant, register


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """The window ``grid / 2^L`` (exact on both axes, so that the global query generator reaches it) whose
    shorter side is closest to ``extent`` (the larger on a tie); the whole grid when no halving divides it."""
    windows = [grid]
    while all(side % 2 == 0 for side in windows[-1]):
        windows.append(tuple(side // 2 for side in windows[-1]))
    best = min(windows, key=lambda w: (abs(min(w) - extent), -min(w)))
    return {"window_size": best}


register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=Paper("Global Context Vision Transformers", 2023, "2206.09959", 59),
    layout=GRID_2D,
    summary="GC ViT: window attention whose queries are one window of global tokens from the global query "
            "generator (fused-MBConv + max-pool stack), shared by every window; local/global pair in the layer",
    op=global_query_attention,
    implementations={
        "native": Implementation("native", global_query_native, replace(NATIVE_CPU, features=frozenset({"bias"})),
                                 "global queries tiled over the grid, then the fused C++ window kernel; forward "
                                 "and backward"),
        "windowed": Implementation("windowed", global_query_windowed, AUTOGRAD_ANY_FLOAT,
                                   "window partition + global queries repeated per window + one batched SDPA; "
                                   "O(N * w^2)"),
        "reference": Implementation("reference", global_query_reference, AUTOGRAD_ANY_FLOAT,
                                    "queries tiled over the grid, dense N x N window mask (oracle)"),
    },
    layer=GlobalQueryAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "resolution": (8, 12)},  # window_size None: (4, 6) here
    size_options={"resolution": tuple},  # the (H, W) grid the global query generator is built for
    fit_options=fit_options,
))
