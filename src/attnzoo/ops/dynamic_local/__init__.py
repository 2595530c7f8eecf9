"""DLGSANet's multi-head dynamic local self-attention, MHDLSA (arXiv 2301.02031): per-pixel predicted depthwise
kernels; reference and unfold implementations."""

from attnzoo.ops.dynamic_local.functional import dynamic_local_attention_2d

__all__ = ["dynamic_local_attention_2d"]
