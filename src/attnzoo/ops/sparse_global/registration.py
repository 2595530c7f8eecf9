"""Registry entry of DLGSANet's sparse global self-attention, SparseGSA (arXiv 2301.02031), family "sparse"."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.sparse_global import SparseGlobalAttention
from attnzoo.ops.dynamic_local.registration import PAPER
from attnzoo.ops.sparse_global.functional import VARIANT_NAME, sparse_global_attention
from attnzoo.ops.sparse_global.gram import sparse_global_gram
from attnzoo.ops.sparse_global.reference import sparse_global_reference
from attnzoo.registry import IMAGE, SEQUENCE, Implementation, Variant, register

CAPABILITIES = replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | {"top_k"})

register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=PAPER,
    layout=SEQUENCE,
    summary="DLGSANet SparseGSA: transposed (channel) attention over all pixels, L2-normalised q/k, learned "
            "temperature, ReLU instead of softmax keeps only positive similarities (optional top-k); O(N D^2)",
    op=sparse_global_attention,
    implementations={
        "gram": Implementation("gram", sparse_global_gram, CAPABILITIES,
                               "Q^T K once, divided by the column-norm outer product; no normalised copies"),
        "reference": Implementation("reference", sparse_global_reference, CAPABILITIES,
                                    "the official order: F.normalize q and k, q^T k * tau, activation, @ v"),
    },
    layer=SparseGlobalAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4},
    aliases=("sparsegsa",),
))
