"""Registry entry of DLGSANet's multi-head dynamic local self-attention, MHDLSA (arXiv 2301.02031), family
"sparse"."""

from __future__ import annotations

from typing import Any

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.dynamic_local import DynamicLocalAttention
from attnzoo.ops.dynamic_local.functional import VARIANT_NAME, dynamic_local_attention_2d
from attnzoo.ops.dynamic_local.reference import dynamic_local_reference
from attnzoo.ops.dynamic_local.unfold import dynamic_local_unfold
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Paper, Variant, register

PAPER = Paper("DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for Image Super-Resolution",
              2023, "2301.02031", 7)


def fit_options(grid: tuple[int, ...], extent: int) -> dict[str, Any]:
    """Per-pixel kernels of ``extent`` pixels per axis, made odd (centred on the pixel)."""
    return {"kernel_size": extent | 1}


register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=PAPER,
    layout=GRID_2D,
    summary="DLGSANet MHDLSA: per-pixel k x k depthwise kernels predicted by a hypernetwork (one per group of "
            "channels) filter the zero-padded window: local attention with predicted, unnormalised weights",
    op=dynamic_local_attention_2d,
    implementations={
        "unfold": Implementation("unfold", dynamic_local_unfold, AUTOGRAD_ANY_FLOAT,
                                 "F.unfold windows, one contraction with the per-pixel kernels; O(N k^2 D)"),
        "reference": Implementation("reference", dynamic_local_reference, AUTOGRAD_ANY_FLOAT,
                                    "kernels written into an explicit N x N matrix, dense product (oracle)"),
    },
    layer=DynamicLocalAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "kernel_size": 7},
    fit_options=fit_options,
    aliases=("mhdlsa",),
))
