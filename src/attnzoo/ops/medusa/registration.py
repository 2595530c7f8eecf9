"""Registry entry of a MEDUSA attention head (arXiv 2110.06063)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.ops.medusa.conv import medusa_conv
from attnzoo.ops.medusa.functional import VARIANT_NAME, medusa_attention
from attnzoo.ops.medusa.reference import medusa_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("MEDUSA: Multi-scale Encoder-Decoder Self-Attention Deep Neural Network Architecture for Medical "
                "Image Analysis", 2022, "2110.06063", 18),
    layout=FEATURE_MAP,
    summary="one MEDUSA head on (B, C, H, W): x + x * (W * resize(S) + b), the shared body's saliency map S "
            "resized to the feature map and turned into per-channel attention by a 7x7 convolution",
    op=medusa_attention,
    implementations={
        "conv": Implementation("conv", medusa_conv, AUTOGRAD_ANY_FLOAT,
                               "F.interpolate (bilinear, half-pixel) and F.conv2d"),
        "reference": Implementation("reference", medusa_reference, AUTOGRAD_ANY_FLOAT,
                                    "explicit interpolation matrices and tap sums"),
    },
))
