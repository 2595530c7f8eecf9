"""Registry entry of DHVT's head-token attention, HI-MHSA (arXiv 2210.05958)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.head_tokens import HeadTokenAttention
from attnzoo.ops.head_tokens.functional import VARIANT_NAME, head_token_attention
from attnzoo.ops.head_tokens.reference import head_token_reference
from attnzoo.ops.head_tokens.sdpa import head_token_sdpa
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=Paper("Bridging the Gap Between Vision Transformers and Convolutional Neural Networks on Small Datasets",
                2022, "2210.05958", 49),
    layout=SEQUENCE,
    summary="DHVT HI-MHSA: each head's channel group pooled over the tokens into one head token (Linear, LN, "
            "GELU, head position embedding), the head tokens join the sequence for multi-head attention, their "
            "projected mean is added to the class token",
    op=head_token_attention,
    implementations={
        "sdpa": Implementation("sdpa", head_token_sdpa, CUSTOM_BACKWARD,
                               "tokens and head tokens concatenated, one softmax_attention SDPA call; "
                               "no (N + M)² scores"),
        "reference": Implementation("reference", head_token_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense scores over the concatenated N + M tokens (oracle)"),
    },
    layer=HeadTokenAttention,
    layer_layout=TOKENS,
    # attnzoo's models have no class token (the ViT mean-pools): head tokens as extra keys/values only
    layer_defaults={"dim": 32, "num_heads": 4, "class_token": False},
))
