"""Registry entry of multi-query self-attention (MQSA-TED, Zhu et al., WSDM 2024)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.mqsa import MQSAAttention
from attnzoo.ops.mqsa.functional import VARIANT_NAME, mqsa_attention
from attnzoo.ops.mqsa.reference import mqsa_reference
from attnzoo.ops.mqsa.sdpa import mqsa_sdpa
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("Collaboration and Transition: Distilling Item Transitions into Multi-Query Self-Attention for "
              "Sequential Recommendation", 2024, "2311.01056", 52)

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=PAPER,
    layout=SEQUENCE,
    summary="multi-query self-attention: each position's own query and the mean query of its last L positions "
            "attend causally to the same keys, mixed alpha : 1 - alpha (sequential recommendation)",
    op=mqsa_attention,
    implementations={
        "sdpa": Implementation("sdpa", mqsa_sdpa,
                               replace(CUSTOM_BACKWARD, features=CUSTOM_BACKWARD.features | {"key_padding"}),
                               "one causal SDPA call per query kind (short, long); first-order backward"),
        "reference": Implementation("reference", mqsa_reference,
                                    replace(AUTOGRAD_ANY_FLOAT,
                                            features=AUTOGRAD_ANY_FLOAT.features | {"key_padding"}),
                                    "dense scores + explicit causal/padding mask per query kind (oracle)"),
    },
    causal=True,
    layer=MQSAAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 2},
))
