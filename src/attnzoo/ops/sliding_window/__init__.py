"""The 1-D sliding-window family (arXiv 2406.05678 SinkLoRA / LongLoRA): sliding window with sinks, S²-Attn,
SF-Attn."""

from attnzoo.ops.sliding_window.functional import (
    shifted_sparse_attention,
    sink_focused_attention,
    sliding_window_attention,
)

__all__ = ["shifted_sparse_attention", "sink_focused_attention", "sliding_window_attention"]
