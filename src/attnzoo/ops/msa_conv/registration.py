"""Registry entry of TiC's MSA-Conv, self-attention inside convolution windows (arXiv 2310.04134)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.msa_conv import MSAConvAttention
from attnzoo.ops.msa_conv.functional import VARIANT_NAME, msa_conv_attention
from attnzoo.ops.msa_conv.gathered import msa_conv_gathered
from attnzoo.ops.msa_conv.reference import msa_conv_reference
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=Paper("TiC: Exploring Vision Transformer in Convolution", 2023, "2310.04134", 34),
    layout=GRID_2D,
    summary="TiC MSA-Conv: each window of a k x k convolution (stride, dilation, zero padding) is one attention: "
            "its centre pixel attends to the window's k² pixels (padding keys masked, or zero as the official "
            "kernel); reconstructed options: cyclic shifts of the heads' keys in four directions, inter-pooling",
    op=msa_conv_attention,
    implementations={
        "gathered": Implementation("gathered", msa_conv_gathered, AUTOGRAD_ANY_FLOAT,
                                   "window keys gathered by an index table, batched GEMMs per window"),
        "reference": Implementation("reference", msa_conv_reference, AUTOGRAD_ANY_FLOAT,
                                    "F.unfold of keys and values, explicit masked softmax over k² (oracle)"),
    },
    layer=MSAConvAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "kernel_size": 3},
))
