"""Registry entry of HaloNet blocked local attention (arXiv 2103.12731)."""

from __future__ import annotations

from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.fitting import grid_block
from attnzoo.layers.halo import HaloAttention
from attnzoo.ops.halo.blocked import halo_blocked
from attnzoo.ops.halo.functional import VARIANT_NAME, halo_attention
from attnzoo.ops.halo.reference import halo_reference
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Paper, Variant, register


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """Blocks of about ``extent`` tokens that tile the grid (:func:`~attnzoo.fitting.grid_block`), halo 1."""
    return {"block_size": grid_block(grid, extent), "halo_size": 1}


register(Variant(
    name=VARIANT_NAME,
    family="local",
    paper=Paper("Scaling Local Self-Attention for Parameter Efficient Visual Backbones", 2021, "2103.12731", 1),
    layout=GRID_2D,
    summary="HaloNet: b x b query blocks attend to the (b + 2h)^2 window around them; factorised 2-D relative "
            "position logits, optional padding mask (timm: unmasked), strided-query downsampling",
    op=halo_attention,
    implementations={
        "blocked": Implementation("blocked", halo_blocked, AUTOGRAD_ANY_FLOAT,
                                  "timm's pad + unfold key windows, one SDPA per block; O(N * w^2) memory"),
        "reference": Implementation("reference", halo_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense scores + explicit mask over the (padded) key grid (oracle)"),
    },
    layer=HaloAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "block_size": 4, "halo_size": 1},
    fit_options=fit_options,
))
