"""Registry entry of gated attention (arXiv 2306.12929, Section 4.2)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD, DROP_IN
from attnzoo.layers.gated_attention import GatedAttention
from attnzoo.ops.clipped_softmax.registration import PAPER
from attnzoo.ops.gated_attention.functional import VARIANT_NAME, gated_attention
from attnzoo.ops.gated_attention.reference import gated_reference
from attnzoo.ops.gated_attention.sdpa import gated_sdpa
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=PAPER,
    layout=SEQUENCE,
    summary="softmax attention with each head's output per token times a sigmoid gate sigmoid(G(x)) in [0, 1], "
            "so that a head can do nothing by closing its gate (no outliers); causal or not",
    op=gated_attention,
    implementations={
        "sdpa": Implementation("sdpa", gated_sdpa,
                               replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features | (DROP_IN - {"weights"})),
                               "torch scaled_dot_product_attention (the softmax op's path) times the gate; "
                               "no attention weights"),
        "reference": Implementation("reference", gated_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | DROP_IN),
                                    "dense scores + explicit Nq x Nk mask (oracle) times the gate; every drop-in "
                                    "feature"),
    },
    causal=True,
    layer=GatedAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4},
))
