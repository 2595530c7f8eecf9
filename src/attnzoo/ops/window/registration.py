"""Registry entry of 2-D (shifted) window attention, Swin style (DaViT arXiv 2204.03645, LaMamba-Diff arXiv
2408.02615, GC ViT arXiv 2206.09959)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, FLEX_COMPILED, NATIVE_CPU
from attnzoo.fitting import grid_block
from attnzoo.layers.window import WindowAttention2D
from attnzoo.ops.window.flex import window_flex
from attnzoo.ops.window.functional import VARIANT_NAME, window_attention_2d
from attnzoo.ops.window.native import window_native
from attnzoo.ops.window.reference import window_reference
from attnzoo.ops.window.windowed import window_windowed
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Paper, Variant, register


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """Windows of about ``extent`` tokens that tile the grid, shifted by half a window (no shift for one window
    covering the whole grid)."""
    window = grid_block(grid, extent)
    return {"window_size": window, "shift_size": window // 2 if window < min(grid) else 0}


register(Variant(
    name=VARIANT_NAME,
    family="local",
    paper=Paper("DaViT: Dual Attention Vision Transformers", 2022, "2204.03645", 11),
    layout=GRID_2D,
    summary="Swin (shifted) window attention: w x w windows after a cyclic shift, region mask, relative "
            "position bias table (DaViT, LaMamba-Diff, GC ViT)",
    op=window_attention_2d,
    implementations={
        "native": Implementation("native", window_native, replace(NATIVE_CPU, features=frozenset({"bias"})),
                                 "fused C++ kernel: each query sees its window's keys directly, no roll or "
                                 "partition copies; forward and backward"),
        "windowed": Implementation("windowed", window_windowed, AUTOGRAD_ANY_FLOAT,
                                   "roll + window partition + one batched SDPA; O(N * w^2) memory"),
        "flex": Implementation("flex", window_flex, FLEX_COMPILED, "compiled FlexAttention with the shared mask"),
        "reference": Implementation("reference", window_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense scores + explicit N x N mask (oracle)"),
    },
    layer=WindowAttention2D,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "window_size": 4, "shift_size": 2},
    fit_options=fit_options,
))
