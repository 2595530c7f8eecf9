"""Multi-head self-attention with the clipped softmax (Bondarenko et al. 2023, arXiv 2306.12929): the token mixer
of the ``clipped_softmax_attention`` variant."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attnzoo.layers.cache import KVCache
from attnzoo.layers.softmax import SoftmaxAttention
from attnzoo.ops.clipped_softmax.functional import clipped_softmax_attention
from attnzoo.ops.clipped_softmax.stretch import check_stretch, gamma_from_alpha


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


def check_fixed_gamma(layer: nn.Module) -> None:
    """Refuse to decode with ``alpha``: γ = −α / T depends on the whole sequence's length T, so the rows a cache
    keeps were computed with another γ than a full forward over the longer sequence would use."""
    if layer.alpha is not None:
        raise ValueError(f"{type(layer).__name__} with alpha={layer.alpha!r} cannot decode with a cache: its gamma = "
                         "-alpha / T changes with the sequence length T; build it with a fixed gamma to decode")


class ClippedSoftmaxAttention(SoftmaxAttention):
    """Multi-head self-attention on ``(B, N, C)`` whose softmax is clipped: fused qkv projection,
    ``clip((ζ − γ) softmax(q kᵀ / √d) + γ, 0, 1) v`` per head, output projection.

    ``gamma`` / ``zeta``: the stretch factors (the paper's BERT default ``clipped(-.025:1)``); or ``alpha`` with
    ``gamma=None``: γ = −α / T with T the call's sequence length (the paper's OPT / ViT setting ``--alpha 12``; the
    official code takes T = ``max_seq_length``, the same for its inputs padded to that length). ``is_causal``,
    ``dropout`` (attention dropout in training), ``scale`` and ``impl`` as :class:`attnzoo.layers.SoftmaxAttention`;
    ``forward`` takes ``key_padding_mask``, ``cu_seqlens`` and, causal and with a fixed ``gamma``, a ``cache``
    from :meth:`new_cache` (the softmax layer's :class:`~attnzoo.layers.cache.KVCache`). Time ``O(N² C)``.
    """

    def __init__(self, dim: int, num_heads: int = 1, is_causal: bool = True, gamma: float | None = -0.025,
                 zeta: float = 1.0, alpha: float | None = None, qkv_bias: bool = True, dropout: float = 0.0,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__(dim, num_heads, is_causal=is_causal, qkv_bias=qkv_bias, dropout=dropout, scale=scale,
                         impl=impl)
        self.gamma, self.zeta, self.alpha = clip_options(gamma, zeta, alpha)

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                  max_length: int | None = None) -> KVCache:
        """:meth:`SoftmaxAttention.new_cache`; ``ValueError`` with ``alpha`` (see :func:`check_fixed_gamma`)."""
        check_fixed_gamma(self)
        return super().new_cache(batch_size, dtype, device, max_length)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, x: torch.Tensor,
               **options: Any) -> torch.Tensor:  # noqa: ANN401
        """:func:`attnzoo.ops.clipped_softmax_attention` of the heads, γ fixed or −α / ``x.shape[1]``."""
        gamma = self.gamma if self.alpha is None else gamma_from_alpha(self.alpha, x.shape[1])
        return clipped_softmax_attention(q, k, v, self.is_causal, self.scale, self.impl, gamma=gamma, zeta=self.zeta,
                                         **options)
