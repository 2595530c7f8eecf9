"""Functional attention ops. Layout ``(B, H, N, D)`` for sequences, ``(B, H, X, Y, D)`` / ``(B, H, X, Y, Z, D)``
for 2-D / 3-D grids. Every op takes ``impl=`` ("auto", "reference", or a named fast path)."""

from attnzoo.ops.agent import agent_attention
from attnzoo.ops.base_conv import base_conv
from attnzoo.ops.dense import dense_attention
from attnzoo.ops.halo import halo_attention
from attnzoo.ops.karat import fourier_karat
from attnzoo.ops.kernelized import kernelized_rpe_attention
from attnzoo.ops.lightning import alibi_slopes, lightning_attention, tnl_slopes
from attnzoo.ops.linear import linear_attention
from attnzoo.ops.lmu import lmu_memory
from attnzoo.ops.neighborhood import (
    neighborhood_attention_1d,
    neighborhood_attention_2d,
    neighborhood_attention_3d,
)
from attnzoo.ops.sliding_window import shifted_sparse_attention, sink_focused_attention, sliding_window_attention
from attnzoo.ops.soft import newton_inverse, soft_attention
from attnzoo.ops.window import window_attention_2d

__all__ = [
    "agent_attention",
    "alibi_slopes",
    "base_conv",
    "dense_attention",
    "fourier_karat",
    "halo_attention",
    "kernelized_rpe_attention",
    "lightning_attention",
    "linear_attention",
    "lmu_memory",
    "neighborhood_attention_1d",
    "neighborhood_attention_2d",
    "neighborhood_attention_3d",
    "newton_inverse",
    "shifted_sparse_attention",
    "sink_focused_attention",
    "sliding_window_attention",
    "soft_attention",
    "tnl_slopes",
    "window_attention_2d",
]
