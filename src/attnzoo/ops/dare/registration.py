"""Registry entry of DARE target attention with decoupled embeddings (arXiv 2410.02604)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.dare import DAREAttention
from attnzoo.ops.dare.functional import VARIANT_NAME, dare_attention
from attnzoo.ops.dare.reference import dare_reference
from attnzoo.ops.dare.sdpa import dare_sdpa
from attnzoo.registry import TOKENS, Implementation, Paper, Variant, register

FEATURES = frozenset({"key_padding", "top_k"})

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=Paper("Long-Sequence Recommendation Models Need Decoupled Embeddings", 2024, "2410.02604", 61),
    layout=TOKENS,
    summary="target attention with decoupled embeddings: scores from attention embeddings only, output from "
            "representation embeddings only, optional top-k search (long user histories)",
    op=dare_attention,
    implementations={
        "sdpa": Implementation("sdpa", dare_sdpa, replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features | FEATURES),
                               "SDPA with one head; top-k choice as a boolean mask; first-order backward"),
        "reference": Implementation("reference", dare_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | FEATURES),
                                    "dense scores + explicit padding / top-k mask (oracle)"),
    },
    layer=DAREAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "attention_dim": 16},
))
