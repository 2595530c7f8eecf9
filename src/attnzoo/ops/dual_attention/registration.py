"""Registry entries of position and channel attention (PAM, CAM) as the multi-scale self-guided attention of
paper 23 (arXiv 1906.02849) uses them."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.dual_attention import ChannelSelfAttention, PositionSelfAttention
from attnzoo.ops.dual_attention.functional import (
    CHANNEL_VARIANT,
    POSITION_VARIANT,
    channel_self_attention,
    position_self_attention,
)
from attnzoo.ops.dual_attention.reference import channel_reference, position_reference
from attnzoo.ops.dual_attention.sdpa import channel_sdpa, position_sdpa
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

PAPER = Paper("Multi-scale self-guided attention for medical image segmentation", 2020, "1906.02849", 23)

register(Variant(
    name=POSITION_VARIANT,
    family="cnn",
    paper=PAPER,
    layout=FEATURE_MAP,
    summary="DANet's position attention module (PAM) on (B, C, H, W): gamma * V softmax(Q^T K)^T + x over the H*W "
            "pixels with 1x1 projections (C/8 query/key channels), gamma initialised to 0",
    op=position_self_attention,
    implementations={
        "sdpa": Implementation("sdpa", position_sdpa, CUSTOM_BACKWARD,
                               "scaled_dot_product_attention over the pixels, scale 1 (flash kernel on CPU: no "
                               "(HW)^2 matrix)"),
        "reference": Implementation("reference", position_reference, AUTOGRAD_ANY_FLOAT,
                                    "the explicit (HW) x (HW) energy and softmax of the official PAM_Module"),
    },
    layer=PositionSelfAttention,
    layer_layout=FEATURE_MAP,
    layer_defaults={"dim": 16},
))

register(Variant(
    name=CHANNEL_VARIANT,
    family="cnn",
    paper=PAPER,
    layout=FEATURE_MAP,
    summary="DANet's channel attention module (CAM) on (B, C, H, W): gamma * softmax(max(E) - E) X + x with the "
            "channel energy E = X X^T, no parameters but gamma (initialised to 0)",
    op=channel_self_attention,
    implementations={
        "sdpa": Implementation("sdpa", channel_sdpa, CUSTOM_BACKWARD,
                               "scaled_dot_product_attention over the channels with queries -X (softmax(-E))"),
        "reference": Implementation("reference", channel_reference, AUTOGRAD_ANY_FLOAT,
                                    "the explicit C x C energy, softmax(max - E), of the official CAM_Module"),
    },
    layer=ChannelSelfAttention,
    layer_layout=FEATURE_MAP,
    layer_defaults={"dim": 16},
))
