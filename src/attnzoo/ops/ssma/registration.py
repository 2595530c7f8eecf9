"""Registry entry of the SSMA fusion block (arXiv 1808.03833)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.ops.ssma.conv import ssma_conv
from attnzoo.ops.ssma.functional import VARIANT_NAME, ssma_fusion
from attnzoo.ops.ssma.reference import ssma_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("Self-Supervised Model Adaptation for Multimodal Semantic Segmentation", 2020, "1808.03833", 58),
    layout=FEATURE_MAP,
    summary="SSMA fusion of two modalities (B, Cx, H, W), (B, Cy, H, W): X = cat(x, y) gated by "
            "sigmoid(conv3(relu(conv3(X)))) (bottleneck C/16), then a 1x1 convolution (the layer adds batch norm)",
    op=ssma_fusion,
    implementations={
        "conv": Implementation("conv", ssma_conv, AUTOGRAD_ANY_FLOAT, "three F.conv2d calls"),
        "reference": Implementation("reference", ssma_reference, AUTOGRAD_ANY_FLOAT,
                                    "the three convolutions as explicit tap sums"),
    },
))
