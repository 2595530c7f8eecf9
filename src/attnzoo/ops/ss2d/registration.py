"""Registry entry of SS2D, the 2-D selective scan of VMamba (arXiv 2401.10166) and Mamba YOLO (arXiv 2406.05835)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.ss2d import SS2D
from attnzoo.ops.ss2d.chunked import ss2d_chunked
from attnzoo.ops.ss2d.functional import VARIANT_NAME, selective_scan_2d
from attnzoo.ops.ss2d.reference import ss2d_reference
from attnzoo.registry import IMAGE, Implementation, Paper, Variant, register

CHUNKED = replace(AUTOGRAD_ANY_FLOAT, auto_min_length=100)
"""``auto`` runs the reference below 100 pixels: the chunked scan does about twice the arithmetic (two passes) for
``3√L`` instead of ``L`` sequential steps, which pays from about 100 pixels on. Measured forward + backward, one
thread, float32, on a loaded 2-core machine (orientation only, not committed benchmark numbers): 7x7, batch 32,
E=128, N=16: reference 0.57 s, chunked 1.1 s; 14x14, batch 2, E=64, N=16: 0.30 s / 0.17 s; 32x32, E=64, N=16:
1.7 s / 0.40 s; 64x64, E=32, N=4: 9.8 s / 1.2 s."""

# The registered layer is VMamba v2's and LaMamba-Diff's SS2D (d_state 1, SiLU; LaMamba-XL's config): on CPU the
# state work is 16x smaller than Mamba YOLO's d_state 16 (about 5 s per Fashion-MNIST ViT step at batch 32 under
# load), which SS2D(d_state=16, act="gelu") builds.
register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("Mamba YOLO: SSMs-Based YOLO For Object Detection", 2024, "2406.05835", 27),
    layout=IMAGE,
    summary="SS2D (VMamba / Mamba YOLO / LaMamba): the image read in four scan orders (rows, columns, both "
            "reversed), a selective state-space scan h_t = exp(Δ_t A) h_(t-1) + Δ_t B_t x_t, y_t = C_t h_t + D x_t "
            "along each, the four outputs merged back; linear in the pixels",
    op=selective_scan_2d,
    implementations={
        "chunked": Implementation("chunked", ss2d_chunked, CHUNKED,
                                  "all √L-pixel chunks scanned at once, chunk states carried across chunks, "
                                  "3√L sequential steps (auto from 100 pixels)"),
        "reference": Implementation("reference", ss2d_reference, AUTOGRAD_ANY_FLOAT,
                                    "one recurrence step per pixel (the official selective_scan_ref loop, oracle)"),
    },
    layer=SS2D,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "d_state": 1, "act": "silu"},
))
