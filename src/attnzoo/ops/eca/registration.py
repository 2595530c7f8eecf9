"""Registry entry of ECA, efficient channel attention (arXiv 1910.03151)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.eca import EfficientChannelAttention
from attnzoo.ops.eca.conv1d import eca_conv1d
from attnzoo.ops.eca.functional import VARIANT_NAME, efficient_channel_attention
from attnzoo.ops.eca.reference import eca_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", 2019, "1910.03151", 31),
    layout=FEATURE_MAP,
    summary="channel gate σ(conv1d_k(GAP(x))) ⊙ x: a k-tap 1-D convolution across the pooled channels (k "
            "parameters, adaptive k = ψ(C)), no dimensionality reduction",
    op=efficient_channel_attention,
    implementations={
        "conv1d": Implementation("conv1d", eca_conv1d, AUTOGRAD_ANY_FLOAT,
                                 "F.conv1d over the (B, 1, C) pooled descriptor, O(Ck + CHW)"),
        "reference": Implementation("reference", eca_reference, AUTOGRAD_ANY_FLOAT,
                                    "the convolution as an explicit C x C band (Toeplitz) or circulant matrix "
                                    "(oracle)"),
    },
    layer=EfficientChannelAttention,
    layer_layout=FEATURE_MAP,
    layer_defaults={"dim": 64},
    aliases=("eca",),
    compare_default=True,
))
