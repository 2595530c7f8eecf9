"""Registry entry of the Legendre memory of LMUFormer (arXiv 2402.04882)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, FULL_PRECISION
from attnzoo.layers.lmu import LMUMixer
from attnzoo.ops.base_conv.common import SEQUENCE_DROP_IN
from attnzoo.ops.lmu.chunked import lmu_chunked
from attnzoo.ops.lmu.fft import lmu_fft
from attnzoo.ops.lmu.functional import VARIANT_NAME, lmu_memory
from attnzoo.ops.lmu.recurrent import lmu_recurrent
from attnzoo.ops.lmu.reference import lmu_reference
from attnzoo.registry import TOKENS, Implementation, Paper, Variant, register

CAPABILITIES = replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | SEQUENCE_DROP_IN)
FFT = replace(CAPABILITIES, dtypes=FULL_PRECISION, exactly_causal=False)
"""``torch.fft`` has no half-precision transforms of arbitrary length; the circular convolution leaks the future
at round-off level."""

register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("LMUFormer: Low Complexity Yet Powerful Spiking Model With Legendre Memory Units", 2024,
                "2402.04882", 53),
    layout=TOKENS,
    summary="per-channel Legendre memory m_t = Ā m_(t-1) + B̄ u_t (ZOH, order d, window θ): FFT-parallel for "
            "training, recurrent with explicit state for decoding",
    op=lmu_memory,
    implementations={
        "chunked": Implementation("chunked", lmu_chunked, CAPABILITIES,
                                  "Toeplitz GEMM inside 64-token chunks + state carried across chunks, exactly "
                                  "causal, O(N · 64 · d + N d²)"),
        "fft": Implementation("fft", lmu_fft, FFT, "FFT convolution with the impulse response Ā^t B̄, O(N log N) "
                              "(LMUFormer's training form; causal up to roundoff)"),
        "recurrent": Implementation("recurrent", lmu_recurrent, CAPABILITIES,
                                    "one state update per token (decoding), O(N d²)"),
        "reference": Implementation("reference", lmu_reference, CAPABILITIES,
                                    "dense Toeplitz operator from explicit matrix powers, O(N² d) (oracle)"),
    },
    causal=True,
    layer=LMUMixer,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32},
))
