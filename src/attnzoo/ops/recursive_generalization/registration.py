"""Registry entry of RG-SA, recursive-generalization self-attention (RGT, arXiv 2303.06373)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.recursive_generalization import RecursiveGeneralizationAttention
from attnzoo.ops.recursive_generalization.functional import VARIANT_NAME, recursive_generalization_attention
from attnzoo.ops.recursive_generalization.reference import recursive_generalization_reference
from attnzoo.ops.recursive_generalization.gemm import recursive_generalization_gemm
from attnzoo.registry import IMAGE, SEQUENCE, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=Paper("Recursive Generalization Transformer for Image Super-Resolution", 2024, "2303.06373", 43),
    layout=SEQUENCE,
    summary="RG-SA: every query attends to M representative tokens made by recursively reducing the map with "
            "one stride-4 depthwise conv (T times) + DWConv/1x1/LN/GELU; CPE on the values; O(N M D)",
    op=recursive_generalization_attention,
    implementations={
        "gemm": Implementation("gemm", recursive_generalization_gemm, AUTOGRAD_ANY_FLOAT,
                               "matmul, softmax, matmul of the N queries over the M representatives; O(N M D)"),
        "reference": Implementation("reference", recursive_generalization_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense N x M scores, explicit softmax (oracle)"),
    },
    layer=RecursiveGeneralizationAttention,
    layer_layout=IMAGE,
    # levels=1: one stride-4 reduction in both modes (the official rule, levels=None, needs maps of 16+ pixels
    # a side in evaluation and changes T between training and evaluation below 64 x 64)
    layer_defaults={"dim": 32, "num_heads": 4, "levels": 1},
))
