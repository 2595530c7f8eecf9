"""SOFT layer (arXiv 2110.11945), following the official ``SoftmaxFreeAttention`` + ``SoftmaxFreeAttentionKernel``."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.soft.functional import soft_attention
from attnzoo.validation import check_int


class SoftAttention(ShowsOptions, nn.Module):
    """Softmax-free attention on channels-last images ``(B, H, W, C) -> (B, H, W, C)``.

    As the official module: ``W_q`` and ``W_v`` only (keys = queries), heads of ``d = C / num_heads``; landmarks
    from the scaled queries ``q·d^{-1/4}`` by a ``d -> d`` convolution with kernel = stride = ``sr_ratio`` (no
    bias, shared by the heads), then ``LayerNorm(d)`` and GELU, giving ``(H / r)·(W / r)`` landmarks (floored);
    the op; plus a per-head ``conv_size x conv_size`` convolution of ``V`` shared across the head's channels
    (official ``self.conv``, grouped over heads, no bias; ``conv_size = 0`` turns it off); output linear ``ff``.
    Not reproduced: the official ``sr_ratio = 1`` branch (a linear landmark map on tokens plus a class token);
    here ``sr_ratio = 1`` gives one landmark per token through the same Nyström formula.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 2, conv_size: int = 3, newton_iters: int = 20,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, check_heads(dim, num_heads)
        self.sr_ratio, self.impl = check_int("sr_ratio", sr_ratio), impl
        self.newton_iters = check_int("newton_iters", newton_iters, 0)
        check_int("conv_size", conv_size, 0)
        self.w_q = nn.Linear(dim, dim)
        self.w_v = nn.Linear(dim, dim)
        self.landmark = nn.Conv2d(self.head_dim, self.head_dim, kernel_size=sr_ratio, stride=sr_ratio, bias=False)
        self.landmark_norm = nn.Sequential(nn.LayerNorm(self.head_dim), nn.GELU())
        self.conv = None
        if conv_size:
            self.conv = nn.Conv2d(num_heads, num_heads, conv_size, padding=conv_size // 2, groups=num_heads,
                                  bias=False)
        self.ff = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        if min(x.shape[1:3]) < self.sr_ratio:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected (B, H, W, C) with H, W >= "
                             f"sr_ratio={self.sr_ratio}")
        b, height, width, _ = x.shape
        h, d = self.num_heads, self.head_dim
        q = self.w_q(x).unflatten(-1, (h, d)).permute(0, 3, 4, 1, 2)  # (B, heads, d, H, W)
        v = self.w_v(x).unflatten(-1, (h, d)).permute(0, 3, 4, 1, 2)
        scaled = (q * d ** -0.25).flatten(0, 1)
        landmarks = self.landmark_norm(self.landmark(scaled).flatten(2).transpose(1, 2)).unflatten(0, (b, h))
        out = soft_attention(q.flatten(3).transpose(-1, -2), v.flatten(3).transpose(-1, -2), landmarks,
                             newton_iters=self.newton_iters, impl=self.impl)  # (B, heads, N, d)
        if self.conv is not None:
            local = self.conv(v.transpose(1, 2).flatten(0, 1)).unflatten(0, (b, d))  # (B, d, heads, H, W)
            out = out + local.flatten(3).permute(0, 2, 3, 1)
        return self.ff(out.transpose(1, 2).reshape(b, height, width, h * d))
