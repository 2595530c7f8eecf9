"""Registry entry of SHViT's single-head attention on partial channels (arXiv 2401.16456)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.single_head import SingleHeadAttention
from attnzoo.ops.single_head.functional import VARIANT_NAME, single_head_attention
from attnzoo.ops.single_head.reference import single_head_reference
from attnzoo.ops.single_head.sdpa import single_head_sdpa
from attnzoo.registry import IMAGE, SEQUENCE, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=Paper("SHViT: Single-Head Vision Transformer with Memory Efficient Macro Design", 2024, "2401.16456", 33),
    layout=SEQUENCE,
    summary="SHViT single-head attention: one head (q/k width 16) on a fraction C/4.67 of the channels after a "
            "GroupNorm, the other channels passed through, concatenated and projected (ReLU, 1x1 conv + BN)",
    op=single_head_attention,
    implementations={
        "sdpa": Implementation("sdpa", single_head_sdpa, CUSTOM_BACKWARD,
                               "softmax_attention(impl='sdpa') on the one head; no N x N scores"),
        "reference": Implementation("reference", single_head_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense scores softmax(QKᵀ · scale) V (oracle)"),
    },
    layer=SingleHeadAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "proj_norm_init": 1.0},  # official 0: an all-zero output at init
))
