"""The pointer head of Pointer Networks (Vinyals et al. 2015, arXiv 1506.03134) as a module: additive attention
whose softmax over the encoder positions is the output."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.pointer.functional import pointer_attention
from attnzoo.validation import check_int


class PointerAttention(ShowsOptions, nn.Module):
    """``u^i_j = vᵀ tanh(W1 e_j + W2 d_i)``, ``p(C_i = j) = softmax_j(u^i_j)`` (paper Sec. 2.3) on decoder states
    ``(B, Nq, dim)`` and encoder states ``(B, Nk, dim)`` -> ``(B, Nq, Nk)``.

    Not a token mixer: it maps a pair of sequences to one distribution over the encoder positions per decoder
    step (so the registry gives it no ``layer`` entry; build it directly). Parameters ``w1``, ``w2`` ``(dim,
    attn_dim)`` and ``v`` ``(attn_dim,)``, initialised uniformly in ``±1/√fan_in`` (as ``nn.Linear``; the paper's
    recalled ``U(-0.08, 0.08)`` is the model's choice, :class:`attnzoo.models.PointerNetwork`). ``forward(decoder,
    encoder, mask=None, return_logits=False)``: ``mask`` ``(B, Nq, Nk)`` bool, ``True`` = may be pointed to;
    probabilities by default, the scores (``-inf`` where masked) with ``return_logits=True``; see
    :func:`attnzoo.ops.pointer.pointer_attention`. Time O(B · Nq · Nk · attn_dim).
    """

    def __init__(self, dim: int, attn_dim: int, impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.attn_dim, self.impl = check_int("dim", dim), check_int("attn_dim", attn_dim), impl
        self.w1 = nn.Parameter(torch.empty(dim, attn_dim))
        self.w2 = nn.Parameter(torch.empty(dim, attn_dim))
        self.v = nn.Parameter(torch.empty(attn_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``U(±1/√dim)`` for ``w1``, ``w2`` and ``U(±1/√attn_dim)`` for ``v``."""
        for weight, fan_in in ((self.w1, self.dim), (self.w2, self.dim), (self.v, self.attn_dim)):
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor, mask: torch.Tensor | None = None,
                return_logits: bool = False) -> torch.Tensor:
        for name, x in (("decoder", decoder), ("encoder", encoder)):
            try:
                check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
            except (TypeError, ValueError) as error:
                raise type(error)(f"{name}: {error}") from None
        weights = [autocast_like(w, decoder) for w in (self.w1, self.w2, self.v)]
        return pointer_attention(decoder, encoder, *weights, mask=mask, return_logits=return_logits,
                                 impl=self.impl)
