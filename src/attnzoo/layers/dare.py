"""DARE target-attention token mixer (Feng et al., ICLR 2025, arXiv 2410.02604; :func:`attnzoo.ops.dare_attention`)."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.dare.functional import dare_attention
from attnzoo.validation import check_flag, check_int, check_optional_int, check_scale


class DAREAttention(ShowsOptions, nn.Module):
    """Every token of ``(B, N, C)`` attends, as a target, over all tokens as its history, with decoupled
    embeddings: scores from an attention projection ``a = x W_att`` (``attention_dim`` wide, shared by targets and
    history, as DARE shares one attention table between target and behaviour), values from a separate
    representation projection ``r = x W_repr``; then an output projection. ``decoupled=False`` uses one
    projection for both (the TWIN baseline; then ``attention_dim`` must be ``dim``). ``top_k`` keeps each
    target's best-scoring tokens. Not causal. Time O(N² (Da + C))."""

    def __init__(self, dim: int, attention_dim: int | None = None, decoupled: bool = True, top_k: int | None = None,
                 bias: bool = True, scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        self.attention_dim = check_optional_int("attention_dim", attention_dim) or dim
        self.decoupled = check_flag("decoupled", decoupled)
        check_flag("bias", bias)
        if not decoupled and self.attention_dim != dim:
            raise ValueError(f"attention_dim={attention_dim!r}: expected None or dim={dim} with decoupled=False "
                             "(one projection gives both the attention and the representation embedding)")
        self.top_k = check_optional_int("top_k", top_k)
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.representation = nn.Linear(dim, dim, bias=bias)
        self.attention = nn.Linear(dim, self.attention_dim, bias=bias) if decoupled else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` ``(B, N)`` (``True`` = padding)."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        r = self.representation(x)
        a = self.attention(x) if self.attention is not None else r
        out = dare_attention(a, a, r, self.top_k, self.scale, self.impl, key_padding_mask=key_padding_mask)
        return self.proj(out)
