"""Sparsifiner attention (arXiv 2303.13755): the low-rank connectivity predictor's top-k mask, sparse attention
with it (reference and blocked implementations) and the distillation loss against dense attention."""

from attnzoo.ops.sparsifiner.functional import sparsifiner_attention
from attnzoo.ops.sparsifiner.loss import sparsifiner_distillation_loss

__all__ = ["sparsifiner_attention", "sparsifiner_distillation_loss"]
