"""Registry entry of polarized self-attention (arXiv 2107.00782)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.psa import PolarizedSelfAttention
from attnzoo.ops.psa.functional import VARIANT_NAME, polarized_self_attention
from attnzoo.ops.psa.reassociated import psa_reassociated
from attnzoo.ops.psa.reference import psa_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("Polarized Self-Attention: Towards High-quality Pixel-wise Regression", 2021, "2107.00782", 38),
    layout=FEATURE_MAP,
    summary="a channel-only gate σ(LN(W_z(W_v x · softmax_HW(W_q x)))) and a spatial-only gate "
            "σ(softmax_C(GAP(W_q' x))ᵀ W_v' x), parallel or sequential; the official code's variants as options",
    op=polarized_self_attention,
    implementations={
        "reassociated": Implementation("reassociated", psa_reassociated, AUTOGRAD_ANY_FLOAT,
                                       "linear maps applied to pooled vectors, O(CHW + C²) (O(C²HW) for the "
                                       "official PSA_s value softmax)"),
        "reference": Implementation("reference", psa_reference, AUTOGRAD_ANY_FLOAT,
                                    "both branches in the paper's order, every 1x1 conv on the whole map, "
                                    "O(C²HW) (oracle)"),
    },
    layer=PolarizedSelfAttention,
    layer_layout=FEATURE_MAP,
    layer_defaults={"dim": 32},
    aliases=("psa",),
))
