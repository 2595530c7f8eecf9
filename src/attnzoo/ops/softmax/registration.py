"""Registry entry of full softmax attention (arXiv 1706.03762): the baseline of every family."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD, DROP_IN
from attnzoo.layers.softmax import SoftmaxAttention
from attnzoo.ops.softmax.functional import softmax_attention
from attnzoo.ops.softmax.reference import softmax_reference
from attnzoo.ops.softmax.sdpa import softmax_sdpa
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("Attention Is All You Need", 2017, "1706.03762", None)

register(Variant(
    name="softmax_attention",
    family="full",
    paper=PAPER,
    layout=SEQUENCE,
    summary="full multi-head softmax attention softmax(QKᵀ/√d + mask) V, causal (bottom-right aligned) or not; "
            "the dense baseline",
    op=softmax_attention,
    implementations={
        "sdpa": Implementation("sdpa", softmax_sdpa,
                               replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features | (DROP_IN - {"weights"})),
                               "torch scaled_dot_product_attention with every mask folded into one; "
                               "no attention weights"),
        "reference": Implementation("reference", softmax_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | DROP_IN),
                                    "dense scores + explicit Nq x Nk mask (oracle); every drop-in feature"),
    },
    causal=True,
    layer=SoftmaxAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4},
    aliases=("softmax",),
    compare_default=True,
))
