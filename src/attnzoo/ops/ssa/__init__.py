"""Stochastically subsampled attention, SSA (Hussain, Zaki, Subramanian, KDD 2023, arXiv 2306.01705): random
locally biased key subsamples in training, dense attention at inference."""

from attnzoo.ops.ssa.functional import stochastic_subsampled_attention
from attnzoo.ops.ssa.sampling import SSASample, ssa_sample

__all__ = ["SSASample", "ssa_sample", "stochastic_subsampled_attention"]
