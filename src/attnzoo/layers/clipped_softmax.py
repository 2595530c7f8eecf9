"""Multi-head self-attention with the clipped softmax (Bondarenko et al. 2023, arXiv 2306.12929): the token mixer
of the ``clipped_softmax_attention`` variant."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.clipped_softmax.functional import clipped_softmax_attention
from attnzoo.ops.clipped_softmax.stretch import check_stretch, gamma_from_alpha
from attnzoo.validation import check_flag, check_real, check_scale


def clip_options(gamma: float | None, zeta: float, alpha: float | None) -> tuple[float | None, float, float | None]:
    """Check a layer's stretch options: exactly one of ``gamma`` (γ ≤ 0, fixed) and ``alpha`` (α ≥ 0, γ = −α / T
    for the T tokens of each call); ``zeta`` ≥ 1. Returns them."""
    if (gamma is None) == (alpha is None):
        raise ValueError(f"gamma={gamma!r}, alpha={alpha!r}: expected exactly one of them (a fixed gamma, or alpha "
                         "for gamma = -alpha / T per call; pass gamma=None with alpha)")
    if alpha is not None:
        gamma_from_alpha(alpha, 1)
        check_stretch(0.0, zeta)
        return None, float(zeta), float(alpha)
    gamma, zeta = check_stretch(gamma, zeta)
    return gamma, zeta, None


class ClippedSoftmaxAttention(ShowsOptions, nn.Module):
    """Multi-head self-attention on ``(B, N, C)`` whose softmax is clipped: fused qkv projection,
    ``clip((ζ − γ) softmax(q kᵀ / √d) + γ, 0, 1) v`` per head, output projection.

    ``gamma`` / ``zeta``: the stretch factors (the paper's BERT default ``clipped(-.025:1)``); or ``alpha`` with
    ``gamma=None``: γ = −α / T with T the call's sequence length (the paper's OPT / ViT setting ``--alpha 12``; the
    official code takes T = ``max_seq_length``, the same for its inputs padded to that length). ``is_causal``,
    ``dropout`` (attention dropout in training), ``scale`` and ``impl`` as :class:`attnzoo.layers.SoftmaxAttention`;
    ``forward`` takes ``key_padding_mask`` and ``cu_seqlens``. Time ``O(N² C)``.
    """

    def __init__(self, dim: int, num_heads: int = 1, is_causal: bool = True, gamma: float | None = -0.025,
                 zeta: float = 1.0, alpha: float | None = None, qkv_bias: bool = True, dropout: float = 0.0,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        check_flag("is_causal", is_causal)
        check_flag("qkv_bias", qkv_bias)
        self.gamma, self.zeta, self.alpha = clip_options(gamma, zeta, alpha)
        self.dim, self.num_heads, self.is_causal = dim, num_heads, is_causal
        self.dropout = check_real("dropout", dropout, inclusive=True)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (True = padding) and packed
        ``cu_seqlens`` as in :mod:`attnzoo.ops.dropin`."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        gamma = self.gamma if self.alpha is None else gamma_from_alpha(self.alpha, x.shape[1])
        out = clipped_softmax_attention(q, k, v, self.is_causal, self.scale, self.impl, gamma=gamma, zeta=self.zeta,
                                        dropout_p=self.dropout if self.training else 0.0,
                                        key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens)
        return self.proj(merge_heads(out))
