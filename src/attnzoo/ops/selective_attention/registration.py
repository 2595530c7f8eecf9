"""Registry entry of SDANet's selective dense attention (arXiv 2108.07020)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.ops.selective_attention.batched import selective_batched
from attnzoo.ops.selective_attention.functional import VARIANT_NAME, selective_dense_attention
from attnzoo.ops.selective_attention.reference import selective_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("Towards Real-World Prohibited Item Detection: A Large-Scale X-ray Benchmark", 2021, "2108.07020",
                47),
    layout=FEATURE_MAP,
    summary="SDANet's selective attention over M gathered pyramid levels (B, M, C, H, W) -> (B, C, H, W): SK-style "
            "channel weights and CBAM-style spatial weights, each softmaxed across the levels (from the released "
            "bytecode; the source is not released)",
    op=selective_dense_attention,
    implementations={
        "batched": Implementation("batched", selective_batched, AUTOGRAD_ANY_FLOAT,
                                  "every level at once: one einsum, one M-output convolution"),
        "reference": Implementation("reference", selective_reference, AUTOGRAD_ANY_FLOAT,
                                    "level by level, explicit tap sums"),
    },
))
