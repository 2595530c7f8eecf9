"""Registry entry of lightning attention (arXiv 2405.17381)."""

from __future__ import annotations

from dataclasses import replace

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT
from attnzoo.layers.linear import LightningAttention
from attnzoo.ops.lightning.chunked import decayed_chunked
from attnzoo.ops.lightning.functional import VARIANT_NAME, lightning_attention
from attnzoo.ops.lightning.recurrent import decayed_recurrent
from attnzoo.ops.lightning.reference import decayed_reference
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register


LINEAR_DROP_IN = frozenset({"gqa", "key_padding", "varlen"})
"""The drop-in features every form of the linear-attention sequence ops runs (:mod:`attnzoo.ops.lightning.sequences`):
grouped KV heads, key padding, packed sequences; not masks, dropout, weights or longer keys."""
_CAPABILITIES = replace(AUTOGRAD_ANY_FLOAT, features=AUTOGRAD_ANY_FLOAT.features | LINEAR_DROP_IN)
CHUNKED_MIN_LENGTH = 16
"""``auto`` takes the recurrent form below 16 new tokens (decoding steps, short chunks after a carried state).
Measured with ``attnzoo bench --op lightning_attention --batch 1 --heads 4 --length N --head-dim 64 --impl chunked
--impl recurrent`` (AMD EPYC, 2 threads, fp32, with an initial state; ``benchmarks/results/decode_dispatch/``, one
run per length, noisy): chunked / recurrent forward 0.65 / 0.11 ms at N = 1, 0.55 / 0.22 at 4, 0.91 / 0.80 at 16,
0.80 / 2.41 at 64 (the crossover lies between 16 and 64); for ``linear_attention`` (softmax-kernel features)
0.44 / 0.18 ms at N = 1."""


def three_forms(chunked: object, recurrent: object, reference: object) -> dict[str, Implementation]:
    """The chunked, recurrent and reference implementations of a (decayed) linear attention, in that priority,
    each with :data:`LINEAR_DROP_IN`."""
    return {
        "chunked": Implementation("chunked", chunked, replace(_CAPABILITIES, auto_min_length=CHUNKED_MIN_LENGTH),
                                  "intra-block masked GEMMs + loop-free carried block states; O(N (block + D) E)"),
        "recurrent": Implementation("recurrent", recurrent, _CAPABILITIES,
                                    "one token at a time with a D x E state (decoding); O(N D E)"),
        "reference": Implementation("reference", reference, _CAPABILITIES,
                                    "dense scores x explicit N x N mask (oracle)"),
    }


register(Variant(
    name=VARIANT_NAME,
    family="linear",
    paper=Paper("Various Lengths, Constant Speed: Efficient Language Modeling with Lightning Attention", 2024,
                "2405.17381", 54),
    layout=SEQUENCE,
    summary="causal decayed linear attention (per-head λ = exp(-slope)): intra-block attention + carried "
            "state; reference / chunked / recurrent with initial and final state",
    op=lightning_attention,
    implementations=three_forms(decayed_chunked, decayed_recurrent, decayed_reference),
    causal=True,
    layer=LightningAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4},
    compare_default=True,
))
