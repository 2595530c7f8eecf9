"""The dense baseline token mixer: multi-head softmax attention (``scaled_dot_product_attention``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.heads import merge_heads, split_heads


class SoftmaxAttention(nn.Module):
    """Multi-head softmax self-attention on ``(B, N, C)``: fused qkv projection, SDPA, output projection.

    ``is_causal=True`` masks the future (position ``t`` attends to positions ``<= t``), as zoology's attention
    baseline (its ``MHA`` with a causal mask); ``is_causal=False`` is full bidirectional attention, as the ViT
    ``Attention`` block. ``dropout`` is attention dropout (zoology uses 0.1), applied during training only.
    Time ``O(N² C)``, memory ``O(heads · N²)`` on the math path.
    """

    def __init__(self, dim: int, num_heads: int = 1, is_causal: bool = True, qkv_bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.dim, self.num_heads, self.is_causal, self.dropout = dim, num_heads, is_causal, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, N, C)`` -> ``(B, N, C)``."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected 3-D (B, N, C={self.dim})")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(merge_heads(out))


class CausalSoftmaxAttention(SoftmaxAttention):
    """:class:`SoftmaxAttention` with ``is_causal=True`` fixed: the causal language model's dense baseline."""

    def __init__(self, dim: int, num_heads: int = 1, qkv_bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, is_causal=True, qkv_bias=qkv_bias, dropout=dropout)
