"""Registry entry of LKA, the large kernel attention of the Visual Attention Network (arXiv 2202.09741)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.lka import LargeKernelAttention
from attnzoo.ops.lka.conv2d import lka_conv2d
from attnzoo.ops.lka.functional import VARIANT_NAME, large_kernel_attention
from attnzoo.ops.lka.reference import lka_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("Visual Attention Network", 2022, "2202.09741", 16),
    layout=FEATURE_MAP,
    summary="x ⊙ Conv1x1(DW-Conv7x7,dilation 3(DW-Conv5x5(x))): a 21x21 convolution decomposed into depthwise, "
            "dilated depthwise and pointwise parts, multiplied into the input (VAN's attention)",
    op=large_kernel_attention,
    implementations={
        "conv2d": Implementation("conv2d", lka_conv2d, AUTOGRAD_ANY_FLOAT,
                                 "three F.conv2d calls (depthwise, dilated depthwise, pointwise), O(CHW(k1²+k2²+C))"),
        "reference": Implementation("reference", lka_reference, AUTOGRAD_ANY_FLOAT,
                                    "each depthwise convolution as its sum over taps of shifted maps (oracle)"),
    },
    layer=LargeKernelAttention,
    layer_layout=FEATURE_MAP,
    layer_defaults={"dim": 32},
    aliases=("lka", "van_attention"),
))
