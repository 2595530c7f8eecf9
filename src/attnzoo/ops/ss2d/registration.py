"""Registry entry of SS2D, the 2-D selective scan of VMamba (arXiv 2401.10166) and Mamba YOLO (arXiv 2406.05835)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.ss2d import SS2D
from attnzoo.ops.ss2d.chunked import ss2d_chunked
from attnzoo.ops.ss2d.functional import VARIANT_NAME, selective_scan_2d
from attnzoo.ops.ss2d.reference import ss2d_reference
from attnzoo.registry import IMAGE, Implementation, Paper, Variant, register

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
        "chunked": Implementation("chunked", ss2d_chunked, AUTOGRAD_ANY_FLOAT,
                                  "Hillis-Steele scan inside √L-pixel chunks, chunk states carried across chunks"),
        "reference": Implementation("reference", ss2d_reference, AUTOGRAD_ANY_FLOAT,
                                    "one recurrence step per pixel (the official selective_scan_ref loop, oracle)"),
    },
    layer=SS2D,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32},
))
