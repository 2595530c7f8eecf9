"""DHVT's head-interaction multi-head self-attention, HI-MHSA (Lu et al. 2022, arXiv 2210.05958, Sec. 3.3), on
``(B, N, C)`` tokens, transcribed from the official ``HI_Attention`` (``vision_transformer.py`` of
ArieSeirack/DHVT, commit a86fedab)."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.head_tokens.functional import head_token_attention
from attnzoo.validation import check_flag, check_scale


class HeadTokenAttention(ShowsOptions, nn.Module):
    """HI-MHSA: multi-head self-attention with one head token per head. ``(B, N, C)`` -> ``(B, N, C)``.

    With ``h = num_heads`` and ``d = C / h`` (the official ``forward``):

    1. head tokens: the tokens' channels split into the ``h`` head groups, each group averaged over all ``N``
       tokens (class token included) -> ``(B, h, d)``; ``Linear(d -> C)`` -> ``(B, h, h, d)``; ``LayerNorm(d)``;
       GELU; flattened to ``h`` tokens of width ``C``; plus a learned head position embedding ``(1, h, C)``
       (truncated normal, std 0.02);
    2. the ``N + h`` tokens go through one ``qkv`` linear and multi-head softmax attention
       (:func:`attnzoo.ops.head_token_attention`), then the output projection;
    3. ``class_token=True`` (the official model, whose first token is its class token): the mean of the ``h``
       projected head tokens is added to the first token; the head tokens are dropped.

    ``class_token=False`` is this library's setting for models without a class token (attnzoo's ViT mean-pools):
    the head tokens take part as keys and values only, and their outputs are dropped (the official code has no
    such mode). Attention and projection dropout of the official module are not implemented (0 there in every
    DHVT config's attention). Time ``O((N + h)² C + N C²)``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, class_token: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        check_flag("qkv_bias", qkv_bias)
        self.class_token = check_flag("class_token", class_token)
        self.dim, self.num_heads = dim, num_heads
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.ht_proj = nn.Linear(self.head_dim, dim)
        self.ht_norm = nn.LayerNorm(self.head_dim)
        self.pos_embed = nn.Parameter(torch.empty(1, num_heads, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def head_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, h, C)`` head tokens of ``x`` ``(B, N, C)`` (step 1 of the class docstring)."""
        pooled = x.unflatten(-1, (self.num_heads, self.head_dim)).mean(1)  # (B, h, d)
        tokens = self.ht_proj(pooled).unflatten(-1, (self.num_heads, self.head_dim))  # (B, h, h, d)
        return nn.functional.gelu(self.ht_norm(tokens)).flatten(2) + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, N, C)`` -> ``(B, N, C)``."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout=f"(B, N, C={self.dim})")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        hq, hk, hv = split_heads(self.qkv(self.head_tokens(x)), 3 * self.num_heads).chunk(3, dim=1)
        out, head_out = head_token_attention(q, k, v, hq, hk, hv, scale=self.scale, impl=self.impl)
        out = self.proj(merge_heads(out))
        if not self.class_token:
            return out
        fused = out[:, :1] + self.proj(merge_heads(head_out)).mean(1, keepdim=True)
        return torch.cat([fused, out[:, 1:]], dim=1)
