"""Registry entries of Combiner (arXiv 2107.05768): Combiner-Fixed and Combiner-Axial."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.combiner import CombinerAttention, CombinerAxialAttention
from attnzoo.ops.combiner.functional import AXIAL, FIXED, combiner_axial_attention, combiner_fixed_attention
from attnzoo.ops.combiner.reference import combiner_axial_reference, combiner_fixed_reference
from attnzoo.ops.combiner.segmented import combiner_axial_segmented, combiner_fixed_segmented
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("Combiner: Full Attention Transformer with Sparse Computation Cost", 2021, "2107.05768", 13)
_LAYER_DEFAULTS = {"dim": 32, "num_heads": 4}

register(Variant(
    name=FIXED,
    family="sparse",
    paper=PAPER,
    layout=SEQUENCE,
    summary="Combiner-Fixed (sqrt_fixed_full): own segment directly + max-pooled summaries of the other (causal: "
            "earlier) segments, one joint softmax; full support at O(N sqrt N)",
    op=combiner_fixed_attention,
    implementations={
        "segmented": Implementation("segmented", combiner_fixed_segmented, CUSTOM_BACKWARD,
                                    "segments reshaped: each segment's queries x (its s keys + the N/s span "
                                    "keys) as batched GEMMs (tiled kernel); O(N (s + N/s)) memory"),
        "reference": Implementation("reference", combiner_fixed_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense N x (N + N/s) scores over every key and summary, explicit mask "
                                    "(oracle)"),
    },
    causal=True,
    layer=CombinerAttention,
    layer_layout=TOKENS,
    layer_defaults=_LAYER_DEFAULTS,
))

register(Variant(
    name=AXIAL,
    family="sparse",
    paper=PAPER,
    layout=SEQUENCE,
    summary="Combiner-Axial (axial_rowmajor): own row directly + the row-attention summaries of the other "
            "(causal: earlier) rows at the same column, one joint softmax; O(N sqrt N)",
    op=combiner_axial_attention,
    implementations={
        "segmented": Implementation("segmented", combiner_axial_segmented, AUTOGRAD_ANY_FLOAT,
                                    "rows reshaped: s x s row and per-column R x R summary scores as batched "
                                    "GEMMs; O(N (s + N/s)) memory, autograd backward"),
        "reference": Implementation("reference", combiner_axial_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense N x 2N scores over every key and row summary, explicit mask (oracle)"),
    },
    causal=True,
    layer=CombinerAxialAttention,
    layer_layout=TOKENS,
    layer_defaults=_LAYER_DEFAULTS,
))
