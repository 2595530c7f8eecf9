"""Registry entry of routing attention (Routing Transformer, arXiv 2003.05997), family "sparse"."""

from __future__ import annotations

import math

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.routing import RoutingAttention
from attnzoo.ops.routing.functional import VARIANT_NAME, routing_attention
from attnzoo.ops.routing.gathered import routing_gathered
from attnzoo.ops.routing.reference import routing_reference
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=Paper("Efficient Content-Based Sparse Attention with Routing Transformers", 2020, "2003.05997", 9),
    layout=SEQUENCE,
    summary="online spherical k-means routing: each of K clusters (centroids shared by queries and keys) gathers its "
            "top-w tokens, causal attention inside each cluster on the original positions, outputs averaged back; "
            "O(N K D + N w D)",
    op=routing_attention,
    implementations={
        "gathered": Implementation("gathered", routing_gathered, CUSTOM_BACKWARD,
                                   "cluster members gathered into (B, H*K, w, D) blocks, one SDPA call, scatter-mean "
                                   "back; never an N x N matrix"),
        "reference": Implementation("reference", routing_reference, AUTOGRAD_ANY_FLOAT,
                                    "every routed query scored against all N keys, explicit cluster mask (oracle)"),
    },
    causal=True,
    causal_selection=False,
    layer=RoutingAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4, "seq_len": 16},
    size_options={"seq_len": math.prod},  # the clusters and window are sized for the model's sequence length
    aliases=("routing",),
))
