"""Combiner (Ren et al., NeurIPS 2021, arXiv 2107.05768): full-support attention at O(N sqrt N) through segment
summaries: Combiner-Fixed and Combiner-Axial."""

from attnzoo.ops.combiner.functional import combiner_axial_attention, combiner_fixed_attention

__all__ = ["combiner_axial_attention", "combiner_fixed_attention"]
