"""Fourier-KArAt attention layer (arXiv 2503.10632): ViT multi-head self-attention with the learnable Fourier
operator."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.karat.functional import fourier_karat
from attnzoo.validation import check_flag, check_int


class FourierKArAtOperator(ShowsOptions, nn.Module):
    """The learnable operator ``Φ̂`` + ``W`` of every head: ``cos_coef``, ``sin_coef`` ``(H, r, N, G)``, N(0, 1)
    as in the paper, and ``proj`` ``(H, N, r)``, U(-1/√r, 1/√r) (``nn.Linear``'s default for r inputs; the paper
    does not state it). Pass one instance to several layers for the paper's "universal" mode (shared across
    blocks); each layer builds its own by default ("blockwise" mode).
    """

    def __init__(self, num_heads: int, seq_len: int, rank: int = 12, grid: int = 3) -> None:
        super().__init__()
        for name, size in (("num_heads", num_heads), ("seq_len", seq_len), ("rank", rank), ("grid", grid)):
            check_int(name, size)
        self.cos_coef = nn.Parameter(torch.randn(num_heads, rank, seq_len, grid))
        self.sin_coef = nn.Parameter(torch.randn(num_heads, rank, seq_len, grid))
        bound = 1 / math.sqrt(rank)
        self.proj = nn.Parameter(torch.empty(num_heads, seq_len, rank).uniform_(-bound, bound))


class FourierKArAtAttention(ShowsOptions, nn.Module):
    """Fourier-KArAt self-attention on ``(B, N, C) -> (B, N, C)``; N must equal ``seq_len`` (the operator's size).

    qkv projection, ``num_heads`` heads of ``C / num_heads``, :func:`fourier_karat` in place of softmax, output
    projection (timm ViT ``Attention`` layout). ``grid``: G (1 for ViT-Base, 3 for ViT-Small/Tiny in the paper);
    ``rank``: r (12 in the paper); ``operator``: a shared :class:`FourierKArAtOperator` (universal mode).
    """

    def __init__(self, dim: int, num_heads: int, seq_len: int, rank: int = 12, grid: int = 3,
                 qkv_bias: bool = True, operator: FourierKArAtOperator | None = None, impl: str = "auto") -> None:
        super().__init__()
        check_heads(dim, num_heads)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads, self.seq_len, self.impl = dim, num_heads, seq_len, impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.operator = FourierKArAtOperator(num_heads, seq_len, rank, grid) if operator is None else operator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        if x.shape[1] != self.seq_len:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected (B, N, C) with N = seq_len = {self.seq_len}")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        op = self.operator
        coefficients = (autocast_like(t, q) for t in (op.cos_coef, op.sin_coef, op.proj))
        out = fourier_karat(q, k, v, *coefficients, impl=self.impl)
        return self.proj(merge_heads(out))
