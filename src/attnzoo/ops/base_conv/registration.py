"""Registry entry of Zoology's BaseConv gated convolution (arXiv 2312.04927)."""

from __future__ import annotations

import math
from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, FULL_PRECISION
from attnzoo.layers.base_conv import BaseConv
from attnzoo.ops.base_conv.common import SEQUENCE_DROP_IN
from attnzoo.ops.base_conv.direct import causal_conv_direct
from attnzoo.ops.base_conv.fft import causal_conv_fft
from attnzoo.ops.base_conv.functional import VARIANT_NAME, base_conv
from attnzoo.ops.base_conv.reference import causal_conv_reference
from attnzoo.registry import TOKENS, Implementation, Paper, Variant, register

CAPABILITIES = replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | SEQUENCE_DROP_IN)
FFT = replace(CAPABILITIES, dtypes=FULL_PRECISION, exactly_causal=False)
"""``torch.fft`` has no half-precision transforms of arbitrary length; the circular convolution leaks the future
at round-off level."""

register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("Zoology: Measuring and Improving Recall in Efficient Language Models", 2023, "2312.04927", 45),
    layout=TOKENS,
    summary="gated causal depthwise convolution y = conv(x) ⊙ (x Wᵀ + b) + x, the gated-convolution baseline "
            "of the recall benchmark",
    op=base_conv,
    implementations={
        "direct": Implementation("direct", causal_conv_direct, CAPABILITIES,
                                 "grouped conv1d with left padding, O(N K) per channel; exactly causal"),
        "fft": Implementation("fft", causal_conv_fft, FFT, "real-FFT causal convolution, O(N log N) per channel "
                              "(long filters; causal up to roundoff)"),
        "reference": Implementation("reference", causal_conv_reference, CAPABILITIES,
                                    "sum over taps of shifted inputs, the definition (oracle)"),
    },
    causal=True,
    layer=BaseConv,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "l_max": 64, "kernel_size": -1},
    size_options={"l_max": math.prod},  # the long filter's length
))
