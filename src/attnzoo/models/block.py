"""The pre-norm residual block every model of :mod:`attnzoo.models` stacks around its token mixer."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.cache import LayerCache


class Block(nn.Module):
    """Pre-norm residual block: ``x + mixer(norm1(x))``, then ``x + mlp(norm2(x))`` (no MLP if ``mlp_ratio=0``).

    Works on any channels-last token layout ``(B, *tokens, C)`` the mixer takes (``(B, N, C)``,
    ``(B, H, W, C)``); a mixer returning a tuple contributes its first element. The mixer must keep the shape
    (no silent broadcasting in the residual).
    """

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if mlp_ratio < 0:
            raise ValueError(f"mlp_ratio={mlp_ratio}: expected >= 0 (0 drops the MLP)")
        self.norm1 = nn.LayerNorm(dim)
        self.mixer = mixer
        hidden = int(dim * mlp_ratio)
        self.norm2: nn.Module = nn.LayerNorm(dim) if hidden else nn.Identity()
        self.mlp: nn.Module | None = (nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
                                      if hidden else None)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        """``(B, *tokens, C) -> (B, *tokens, C)``; ``cache`` (the mixer's decoding cache,
        :mod:`attnzoo.layers.cache`) goes to the mixer when given, so ``x`` is then the next tokens after it."""
        out = self.mixer(self.norm1(x)) if cache is None else self.mixer(self.norm1(x), cache=cache)
        out = out[0] if isinstance(out, tuple) else out
        if out.shape != x.shape:
            raise ValueError(f"mixer {type(self.mixer).__name__} returned shape {tuple(out.shape)} for input "
                             f"{tuple(x.shape)}; a token mixer must keep the shape (e.g. halo_attention needs "
                             "stride=1)")
        x = x + out
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x
