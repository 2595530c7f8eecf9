"""Registry entry of ConViT's gated positional self-attention, GPSA (arXiv 2103.10697)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.gpsa import GatedPositionalSelfAttention
from attnzoo.ops.gpsa.functional import VARIANT_NAME, gpsa_attention
from attnzoo.ops.gpsa.reference import gpsa_reference
from attnzoo.ops.gpsa.sdpa import gpsa_sdpa
from attnzoo.registry import GRID_2D, IMAGE, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="heads",
    paper=Paper("ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases", 2021,
                "2103.10697", 22),
    layout=GRID_2D,
    summary="ConViT gated positional self-attention: per head, a sigmoid gate mixes content softmax(QKᵀ/√d) "
            "with positional softmax(v_pos · r_ij), r_ij = (Δx, Δy, Δx² + Δy²); locality init and non-locality",
    op=gpsa_attention,
    implementations={
        "sdpa": Implementation("sdpa", gpsa_sdpa, CUSTOM_BACKWARD,
                               "content term through softmax_attention(impl='sdpa'), positional attention "
                               "(H, N, N) once per call, mixed after the value products; no attention weights"),
        "reference": Implementation("reference", gpsa_reference,
                                    replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | {"weights"}),
                                    "the official get_attention: dense mixed weights (B, H, N, N), normalised "
                                    "rows, then A v (oracle)"),
    },
    layer=GatedPositionalSelfAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4},
))
