"""Registry entry of stochastically subsampled attention, SSA (arXiv 2306.01705)."""

from __future__ import annotations

from attnzoo.capabilities import AUTOGRAD_ANY_FLOAT, CUSTOM_BACKWARD
from attnzoo.layers.ssa import StochasticSubsampledAttention
from attnzoo.ops.ssa.functional import VARIANT_NAME, stochastic_subsampled_attention
from attnzoo.ops.ssa.gathered import ssa_gathered
from attnzoo.ops.ssa.reference import ssa_reference
from attnzoo.registry import SEQUENCE, TOKENS, Implementation, Paper, Variant, register

register(Variant(
    name=VARIANT_NAME,
    family="sparse",
    paper=Paper("The Information Pathways Hypothesis: Transformers are Dynamic Self-Ensembles", 2023, "2306.01705",
                48),
    layout=SEQUENCE,
    summary="SSA: in training each query segment attends a random locally biased key subsample (explicit, shared "
            "across heads; optional -log pi weights), dense attention at inference; O(N K) with K ~ N / ratio",
    op=stochastic_subsampled_attention,
    implementations={
        "gathered": Implementation("gathered", ssa_gathered, CUSTOM_BACKWARD,
                                   "each query segment's sampled keys gathered once, SDPA on the gathered blocks "
                                   "with their mask (up to 4 groups of segments); O(N K) memory, never N x N"),
        "reference": Implementation("reference", ssa_reference, AUTOGRAD_ANY_FLOAT,
                                    "dense N x N scores with the subsample's explicit mask (oracle)"),
    },
    causal=True,
    layer=StochasticSubsampledAttention,
    layer_layout=TOKENS,
    layer_defaults={"dim": 32, "num_heads": 4},
))
