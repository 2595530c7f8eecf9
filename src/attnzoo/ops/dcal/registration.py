"""Registry entry of DCAL's pair-wise cross-attention (arXiv 2205.02151, Sec. 3.3). Global-local cross-attention
(:func:`attnzoo.ops.glca_attention`) is not a variant of its own: its attention is
:func:`attnzoo.ops.softmax_attention` on the selected queries (that variant's implementations and contract), and
its output has ``R`` tokens, not the ``N`` a registered token mixer keeps."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.dcal import PairwiseCrossAttention
from attnzoo.ops.dcal.functional import VARIANT_NAME, pwca_attention
from attnzoo.ops.dcal.reference import pwca_reference
from attnzoo.ops.dcal.sdpa import pwca_sdpa
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

PAPER = Paper("Dual Cross-Attention Learning for Fine-Grained Visual Categorization and Object Re-Identification",
              2022, "2205.02151", 3)

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=PAPER,
    layout=SEQUENCE,
    summary="pair-wise cross-attention (DCAL PWCA): the queries of an image attend to its own and a distractor "
            "image's keys/values under one softmax; a training-time regulariser sharing the SA weights "
            "(self-attention without a distractor)",
    op=pwca_attention,
    implementations={
        "sdpa": Implementation("sdpa", pwca_sdpa, CUSTOM_BACKWARD,
                               "the two key/value blocks concatenated, one torch scaled_dot_product_attention call"),
        "reference": Implementation("reference", pwca_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense scores of the two blocks normalised together (oracle)"),
    },
    layer=PairwiseCrossAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4},
))
