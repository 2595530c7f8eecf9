"""Multi-query self-attention (MQSA-TED, WSDM 2024, arXiv 2311.01056): short and window-mean long queries over one
causal item sequence, with SDPA and reference implementations."""

from attnzoo.ops.mqsa.functional import mqsa_attention
from attnzoo.ops.mqsa.window import causal_window_mean

__all__ = ["causal_window_mean", "mqsa_attention"]
