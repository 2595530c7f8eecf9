"""Registry entry of HyperZ·Z·W's context-dependent convolution (arXiv 2401.17948)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, FULL_PRECISION
from attnzoo.layers.hyperzzw import HyperZZWLocal
from attnzoo.ops.hyperzzw.conv import hyperzzw_conv as conv_path
from attnzoo.ops.hyperzzw.fft import hyperzzw_fft
from attnzoo.ops.hyperzzw.functional import FFT_FROM_KERNEL, VARIANT_NAME, hyperzzw_conv
from attnzoo.ops.hyperzzw.reference import hyperzzw_reference
from attnzoo.registry import FEATURE_MAP, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="cnn",
    paper=Paper("HyperZ·Z·W Operator Connects Slow-Fast Networks for Full Context Interaction", 2024, "2401.17948",
                5),
    layout=FEATURE_MAP,
    summary="HyperZ·Z·W's context-dependent depthwise convolution on (B, C, H, W) with a per-sample hyper-kernel "
            "(B, C, k, k) from the coordinate-MLP slow network; the layer is the official local branch",
    op=hyperzzw_conv,
    implementations={
        "fft": Implementation("fft", hyperzzw_fft,
                              replace(AUTOGRAD_ANY_FLOAT, dtypes=FULL_PRECISION, auto_min_length=FFT_FROM_KERNEL),
                              f"real 2-D FFTs of size (H + k - 1, W + k - 1); auto from k = {FFT_FROM_KERNEL}"),
        "conv": Implementation("conv", conv_path, AUTOGRAD_ANY_FLOAT, "one grouped F.conv2d with B * C groups"),
        "reference": Implementation("reference", hyperzzw_reference, AUTOGRAD_ANY_FLOAT, "the explicit tap sum"),
    },
    layer=HyperZZWLocal,
    layer_layout=FEATURE_MAP,
    layer_defaults={"dim": 12, "kernel_size": 3},
))
