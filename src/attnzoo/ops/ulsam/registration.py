"""Registry entry of ULSAM, the ultra-lightweight subspace attention module (arXiv 2006.15102)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.ulsam import SubspaceAttention
from attnzoo.ops.ulsam.functional import VARIANT_NAME, subspace_attention
from attnzoo.ops.ulsam.grouped import ulsam_grouped
from attnzoo.ops.ulsam.reference import ulsam_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("ULSAM: Ultra-Lightweight Subspace Attention Module for Compact Convolutional Neural Networks", 2020,
                "2006.15102", 8),
    layout=FEATURE_MAP,
    summary="g channel subspaces, each gated by its own spatial softmax map (depthwise 1x1, max pool, pointwise "
            "to one channel): out = A_n ⊙ F_n + F_n, 5C + 3g parameters",
    op=subspace_attention,
    implementations={
        "grouped": Implementation("grouped", ulsam_grouped, AUTOGRAD_ANY_FLOAT,
                                  "every subspace at once: one max pool, the g pointwise convs as one batched "
                                  "product, eval BatchNorms folded in, O(CHW)"),
        "reference": Implementation("reference", ulsam_reference, AUTOGRAD_ANY_FLOAT,
                                    "the official per-subspace loop, each step written out (oracle)"),
    },
    layer=SubspaceAttention,
    layer_layout=FEATURE_MAP,
    layer_defaults={"dim": 64, "num_subspaces": 4},
    aliases=("ulsam",),
))
