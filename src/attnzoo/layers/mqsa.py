"""Multi-query self-attention token mixer (MQSA-TED, Zhu et al., WSDM 2024; :func:`attnzoo.ops.mqsa_attention`)."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.mqsa.functional import check_alpha, mqsa_attention
from attnzoo.validation import check_flag, check_int, check_scale


class MQSAAttention(ShowsOptions, nn.Module):
    """Causal multi-query self-attention on ``(B, N, C)``: a fused qkv projection, each position's short query
    (its own) and long query (the mean of the last ``window`` positions' queries) over the same causal keys and
    values, mixed ``alpha : 1 - alpha``, then an output projection. ``window=1`` or ``alpha=1`` is causal
    softmax attention. ``key_padding_mask`` ``(B, N)`` (``True`` = padding item). Time O(N² C)."""

    def __init__(self, dim: int, num_heads: int = 1, window: int = 3, alpha: float = 0.5, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        self.window, self.alpha = check_int("window", window), check_alpha(alpha)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads = dim, num_heads
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B, N, C)`` -> ``(B, N, C)``."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        out = mqsa_attention(q, k, v, self.window, self.alpha, self.scale, self.impl,
                             key_padding_mask=key_padding_mask)
        return self.proj(merge_heads(out))
