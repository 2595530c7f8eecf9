"""SG-Former's hybrid-scale attention (arXiv 2308.12216), one scale group: reference and windowed paths."""

from attnzoo.ops.hybrid_scale.functional import hybrid_scale_attention

__all__ = ["hybrid_scale_attention"]
