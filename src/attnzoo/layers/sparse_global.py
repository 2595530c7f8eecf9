"""DLGSANet's sparse global self-attention, SparseGSA (arXiv 2301.02031), transcribed from the official
``SparseAttention`` (``NeonLeexiang/DLGSANet``, ``basicsr/archs/dlgsanet_arch.py``; Restormer's MDTA with ReLU)
with the official parameter names, so that an official module's ``state_dict`` loads as it is
(``tests/test_sparse_global.py`` compares them on copied weights).

Not transcribed: the evaluation-time "TLC" tiling (``tlc_flag``, from megvii-research/TLC: overlapping
``tlc_kernel`` tiles, 48 by default, each attended on its own and averaged), which the official module switches on
in eval mode; it equals the plain forward on grids of at most ``tlc_kernel`` pixels per side, which covers every
grid this library trains on. Here train and eval compute the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.sparse_global.functional import ACTIVATIONS, sparse_global_attention
from attnzoo.validation import check_flag, check_optional_int


class SparseGlobalAttention(ShowsOptions, nn.Module):
    """SparseGSA as a spatial mixer ``(B, H, W, C) -> (B, H, W, C)``: ``qkv`` 1x1 conv ``C -> 3C`` and
    ``qkv_dwconv`` depthwise 3x3 conv (no biases unless ``bias``; the official blocks pass ``bias=False``),
    ``num_heads`` heads of ``C / num_heads`` channels, :func:`attnzoo.ops.sparse_global_attention` over all
    ``H W`` pixels with the learned ``temperature`` (``(heads, 1, 1)``, ones), ``project_out`` 1x1 conv.

    ``activation``: ``"relu"`` (SparseGSA; the official ablation's ``gelu`` / ``sigmoid`` are not offered) or
    ``"softmax"`` (Restormer's MDTA, the dense baseline); ``top_k``: keep only each query channel's ``top_k``
    largest similarities (``None``: all, the official module). The official block's pre-norm and residual live
    outside (``SparseAttentionLayerBlock``). Any grid. Time O(H W C² (1 + 1 / heads)).
    """

    def __init__(self, dim: int, num_heads: int, top_k: int | None = None, activation: str = "relu",
                 bias: bool = False, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        check_optional_int("top_k", top_k)
        if top_k is not None and top_k > head_dim:
            raise ValueError(f"top_k={top_k!r}: expected at most the channels per head dim / num_heads = {head_dim}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}: expected one of {ACTIVATIONS}")
        check_flag("bias", bias)
        self.dim, self.num_heads, self.top_k, self.activation, self.impl = dim, num_heads, top_k, activation, impl
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        b, h, w, c = x.shape
        qkv = self.qkv_dwconv(self.qkv(x.permute(0, 3, 1, 2)))  # (B, 3C, H, W)
        # the official 'b (head c) h w -> b head c (h w)', then tokens before channels: (B, heads, H W, c)
        q, k, v = qkv.view(b, 3, self.num_heads, c // self.num_heads, h * w).transpose(-1, -2).unbind(1)
        out = sparse_global_attention(q, k, v, autocast_like(self.temperature, q).view(-1), top_k=self.top_k,
                                      activation=self.activation, impl=self.impl)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return self.project_out(out).permute(0, 2, 3, 1)
