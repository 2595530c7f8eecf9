"""2-D (shifted) window attention layer, Swin's ``WindowAttention`` inside ``SwinTransformerBlock``'s padding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.window.functional import window_attention_2d
from attnzoo.validation import check_flag, check_scale, per_axis


class WindowAttention2D(ShowsOptions, nn.Module):
    """(Shifted) window self-attention on channels-last input ``(B, H, W, C)`` -> ``(B, H, W, C)``.

    As Swin (and DaViT / LaMamba-Diff): ``qkv = Linear(C, 3C)``, ``num_heads`` heads, attention inside
    ``window_size`` windows after a cyclic shift by ``-shift_size`` with the region mask, optional learnable
    bias table ``(heads, 2wx - 1, 2wy - 1)`` (truncated normal, std 0.02; indexed ``key - query``, so a Swin
    checkpoint's table loads as ``table.flip(1, 2)``), output ``Linear(C, C)``. A grid not divisible by the
    window is zero-padded at the bottom / right before the projection and cropped after, as Swin and DaViT do
    (the padding tokens take part as keys, as there). With a shift, the padded grid is rolled (Swin's order:
    pad, then roll, the region mask built for the padded grid). timm 1.0.31 rolls the unpadded grid and then
    pads, so its region mask no longer matches the rolled tokens: the two differ (0.39-0.76 on a 10x9 grid,
    window 4, shift 2); attnzoo keeps Swin's order (``tests/test_window.py`` pins the difference).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int | Sequence[int] = 7,
                 shift_size: int | Sequence[int] = 0, rel_pos_bias: bool = True, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.dim, self.num_heads = dim, num_heads
        self.window_size = per_axis(window_size, 2, "window_size")
        per_axis(shift_size, 2, "shift_size", minimum=0)
        self.shift_size = shift_size
        self.scale, self.impl = check_scale("scale", scale, None), impl
        for name, flag in (("rel_pos_bias", rel_pos_bias), ("qkv_bias", qkv_bias)):
            check_flag(name, flag)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rpb = None
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.empty(num_heads, *(2 * w - 1 for w in self.window_size)))
            nn.init.trunc_normal_(self.rpb, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        height, width = x.shape[1:3]
        pad_h, pad_w = (-height % self.window_size[0]), (-width % self.window_size[1])
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)  # (B, heads, X, Y, d) each
        out = window_attention_2d(q, k, v, self.window_size, self.shift_size, rpb=autocast_like(self.rpb, q),
                                  scale=self.scale, impl=self.impl)
        return self.proj(merge_heads(out)[:, :height, :width])
