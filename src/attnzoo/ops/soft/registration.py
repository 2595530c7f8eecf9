"""Registry entry of SOFT, softmax-free attention (arXiv 2110.11945)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD, FULL_PRECISION
from attnzoo.layers.soft import SoftAttention
from attnzoo.ops.soft.functional import VARIANT_NAME, soft_attention
from attnzoo.ops.soft.newton import soft_newton
from attnzoo.ops.soft.reference import soft_reference
from attnzoo.registry import IMAGE, SEQUENCE, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("SOFT: Softmax-free Transformer with Linear Complexity", 2021, "2110.11945", 42),
    layout=SEQUENCE,
    summary="Gaussian-kernel attention with K = Q, Nystrom through convolutional landmarks, Newton-Schulz "
            "inverse of the landmark kernel (20 steps), no softmax; O(N M D + M^3)",
    op=soft_attention,
    implementations={
        "newton": Implementation("newton", soft_newton, CUSTOM_BACKWARD,
                                 "A (Newton inverse) (A^T V) right to left, analytic inverse backward; no N x N"),
        # torch.linalg.inv has no half-precision kernels
        "reference": Implementation("reference", soft_reference, replace(AUTOGRAD_ANY_FLOAT, dtypes=FULL_PRECISION),
                                    "dense N x N Nystrom matrix with torch.linalg.inv (oracle)"),
    },
    layer=SoftAttention,
    layer_layout=IMAGE,
    layer_defaults={"dim": 32, "num_heads": 4, "sr_ratio": 2},
))
