"""The SSMA fusion block (arXiv 1808.03833): two modalities fused through a learnt per-pixel, per-channel gate."""

from attnzoo.ops.ssma.functional import ssma_fusion

__all__ = ["ssma_fusion"]
