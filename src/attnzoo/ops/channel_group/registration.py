"""Registry entry of DaViT channel group attention (arXiv 2204.03645)."""

from __future__ import annotations

from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.fitting import grid_block
from attnzoo.layers.channel_group import ChannelGroupAttention
from attnzoo.ops.channel_group.functional import VARIANT_NAME, channel_group_attention
from attnzoo.ops.channel_group.reference import channel_group_reference
from attnzoo.ops.channel_group.gemm import channel_group_gemm
from attnzoo.registry import IMAGE, SEQUENCE, Implementation, Paper, Variant, register


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """DaViT's dual pair: windows of about ``extent`` tokens that tile the grid for the spatial half."""
    return {"window_size": grid_block(grid, extent)}


register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=Paper("DaViT: Dual Attention Vision Transformers", 2022, "2204.03645", 11),
    layout=SEQUENCE,
    summary="attention over channel tokens in groups: C_g x C_g scores summed over all positions, "
            "softmax(Q^T K / sqrt(C_g)) applied to V; with window_size, DaViT's dual pair (window then channel)",
    op=channel_group_attention,
    implementations={
        "gemm": Implementation("gemm", channel_group_gemm, AUTOGRAD_ANY_FLOAT,
                               "two batched GEMMs: Q^T K over the positions, V A^T; O(N C_g^2)"),
        "reference": Implementation("reference", channel_group_reference, AUTOGRAD_ANY_FLOAT,
                                    "C_g x C_g scores by einsum, explicit softmax (oracle)"),
    },
    layer=ChannelGroupAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "window_size": 4},
    fit_options=fit_options,
))
