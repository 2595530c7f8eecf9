"""Registry entry of Fourier Kolmogorov-Arnold attention (arXiv 2503.10632)."""

from __future__ import annotations

import math

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.karat import FourierKArAtAttention
from attnzoo.ops.karat.blocked import karat_blocked
from attnzoo.ops.karat.functional import VARIANT_NAME, fourier_karat
from attnzoo.ops.karat.reference import karat_reference
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("Kolmogorov-Arnold Attention: Is Learnable Attention Better For Vision Transformers?", 2025,
                "2503.10632", 20),
    layout=SEQUENCE,
    summary="learnable low-rank Fourier-basis operator in place of softmax: σ̂(QKᵀ) = W Φ̂(QKᵀ), then σ̂ V",
    op=fourier_karat,
    implementations={
        "blocked": Implementation("blocked", karat_blocked, CUSTOM_BACKWARD,
                                  "query blocks, cos/sin features -> GEMMs with the coefficients, h (Wᵀ V), "
                                  "features recomputed in backward: O(N r + block) memory, no N x N σ̂"),
        "reference": Implementation("reference", karat_reference, AUTOGRAD_ANY_FLOAT,
                                    "explicit cos/sin of every harmonic and the N x N σ̂ (oracle)"),
    },
    layer=FourierKArAtAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4, "seq_len": 64},
    size_options={"seq_len": math.prod},  # the operator's sequence length N
))
