"""Registry entry of clipped softmax attention (arXiv 2306.12929, Section 4.1)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD, DROP_IN
from attnzoo.layers.clipped_softmax import ClippedSoftmaxAttention
from attnzoo.ops.clipped_softmax.chunked import clipped_softmax_chunked
from attnzoo.ops.clipped_softmax.functional import VARIANT_NAME, clipped_softmax_attention
from attnzoo.ops.clipped_softmax.reference import clipped_softmax_reference
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing", 2023,
              "2306.12929", 25)

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=PAPER,
    layout=SEQUENCE,
    summary="softmax attention with the clipped softmax clip((ζ-γ)·softmax(QKᵀ/√d + mask) + γ, 0, 1), so that "
            "a head can attend to nothing with finite logits (no outliers); causal or not",
    op=clipped_softmax_attention,
    implementations={
        "chunked": Implementation("chunked", clipped_softmax_chunked,
                                  replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features
                                          | {"attn_mask", "key_padding", "cross", "gqa"}),
                                  "64 queries at a time, hand-written backward recomputing the scores; never "
                                  "holds the Nq x Nk probabilities; causal chunks skip the future keys"),
        "reference": Implementation("reference", clipped_softmax_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | DROP_IN),
                                    "dense scores + explicit Nq x Nk mask, clipped softmax (oracle); every "
                                    "drop-in feature"),
    },
    causal=True,
    layer=ClippedSoftmaxAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4},
))
