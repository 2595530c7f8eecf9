"""Registry entry of Sparsifiner attention (arXiv 2303.13755), family "sparse"."""

from __future__ import annotations

import math

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.sparsifiner import SparsifinerAttention
from attnzoo.ops.sparsifiner.blocked import sparsifiner_blocked
from attnzoo.ops.sparsifiner.functional import VARIANT_NAME, sparsifiner_attention
from attnzoo.ops.sparsifiner.reference import sparsifiner_reference
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=Paper("Sparsifiner: Learning Sparse Instance-Dependent Attention for Efficient Vision Transformers", 2023,
                "2303.13755", 50),
    layout=SEQUENCE,
    summary="instance-dependent sparse attention: a low-rank predictor's approximate attention C P_b picks each "
            "query's top-k keys (ceil(keep_rate N)), softmax over those; distillation loss to the dense attention",
    op=sparsifiner_attention,
    implementations={
        "blocked": Implementation("blocked", sparsifiner_blocked, AUTOGRAD_ANY_FLOAT,
                                  "per query block: scores by one GEMM, top-k gathered, softmax, scattered back, "
                                  "GEMM with V; blocks recomputed in backward; O(N top_k) memory"),
        "reference": Implementation("reference", sparsifiner_reference, AUTOGRAD_ANY_FLOAT,
                                    "explicit N x N connectivity mask, dense masked softmax (oracle)"),
    },
    layer=SparsifinerAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4, "seq_len": 16},
    size_options={"seq_len": math.prod},  # the predictor's token projections are (seq_len, seq_len // 8)
    aliases=("sparsifiner",),
))
