"""DLGSANet's sparse global self-attention, SparseGSA (arXiv 2301.02031), transcribed from the official
``SparseAttention`` (``NeonLeexiang/DLGSANet``, ``basicsr/archs/dlgsanet_arch.py``; Restormer's MDTA with ReLU)
with the official parameter names, so that an official module's ``state_dict`` loads as it is
(``tests/test_sparse_global.py`` compares them on copied weights).

The official module also has an evaluation-time "TLC" mode (``tlc_flag``, from megvii-research/TLC, on by default
there, ``tlc_kernel = 48``): in eval mode the attention runs on overlapping ``tlc_kernel x tlc_kernel`` tiles of
the ``qkv`` map, each on its own, and the tiles' outputs are averaged where they overlap
(``grids`` / ``grids_inverse``). Here it is ``tlc_kernel`` (``None``: off, the default; pass 48 for the official
evaluation); it changes nothing on grids of at most ``tlc_kernel`` pixels per side.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.sparse_global.functional import ACTIVATIONS, sparse_global_attention
from attnzoo.validation import check_flag, check_optional_int


def tile_starts(length: int, tile: int) -> list[int]:
    """The first index of each TLC tile along an axis of ``length`` (the official ``grids`` loop): ``ceil((L - t)
    / (n - 1))`` apart for ``n = ceil(L / t)`` tiles of ``t = min(tile, L)``, the last one ending at ``L``."""
    tile = min(tile, length)
    count = (length - 1) // tile + 1
    step = tile if count == 1 else math.ceil((length - tile) / (count - 1) - 1e-8)
    starts, i = [], 0
    while i + tile < length:
        starts.append(i)
        i += step
    return [*starts, length - tile]


class SparseGlobalAttention(ShowsOptions, nn.Module):
    """SparseGSA as a spatial mixer ``(B, H, W, C) -> (B, H, W, C)``: ``qkv`` 1x1 conv ``C -> 3C`` and
    ``qkv_dwconv`` depthwise 3x3 conv (no biases unless ``bias``; the official blocks pass ``bias=False``),
    ``num_heads`` heads of ``C / num_heads`` channels, :func:`attnzoo.ops.sparse_global_attention` over all
    ``H W`` pixels with the learned ``temperature`` (``(heads, 1, 1)``, ones), ``project_out`` 1x1 conv.

    ``activation``: ``"relu"`` (SparseGSA; the official ablation's ``gelu`` / ``sigmoid`` are not offered) or
    ``"softmax"`` (Restormer's MDTA, the dense baseline); ``top_k``: keep only each query channel's ``top_k``
    largest similarities (``None``: all, the official module). The official block's pre-norm and residual live
    outside (``SparseAttentionLayerBlock``). ``tlc_kernel``: in eval mode, attend on overlapping tiles of this
    side and average them (the official TLC, see the module; ``None``: never). Any grid. Time
    O(H W C² (1 + 1 / heads)).
    """

    def __init__(self, dim: int, num_heads: int, top_k: int | None = None, activation: str = "relu",
                 bias: bool = False, tlc_kernel: int | None = None, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        check_optional_int("top_k", top_k)
        if top_k is not None and top_k > head_dim:
            raise ValueError(f"top_k={top_k!r}: expected at most the channels per head dim / num_heads = {head_dim}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}: expected one of {ACTIVATIONS}")
        check_flag("bias", bias)
        self.tlc_kernel = check_optional_int("tlc_kernel", tlc_kernel)
        self.dim, self.num_heads, self.top_k, self.activation, self.impl = dim, num_heads, top_k, activation, impl
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """The op on a ``(B, 3C, H, W)`` ``qkv`` map -> ``(B, C, H, W)``."""
        b, c3, h, w = qkv.shape
        c = c3 // 3
        # the official 'b (head c) h w -> b head c (h w)', then tokens before channels: (B, heads, H W, c)
        q, k, v = qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w).transpose(-1, -2).unbind(1)
        out = sparse_global_attention(q, k, v, autocast_like(self.temperature, q).view(-1), top_k=self.top_k,
                                      activation=self.activation, impl=self.impl)
        return out.transpose(-1, -2).reshape(b, c, h, w)

    def attend_tiles(self, qkv: torch.Tensor) -> torch.Tensor:
        """TLC: :meth:`attend` on every overlapping ``tlc_kernel`` tile (all tiles in one batched call), the
        outputs averaged where tiles overlap (the official ``grids`` / ``grids_inverse``, for any batch)."""
        b, c3, h, w = qkv.shape
        rows, cols = tile_starts(h, self.tlc_kernel), tile_starts(w, self.tlc_kernel)
        th, tw = min(h, self.tlc_kernel), min(w, self.tlc_kernel)
        tiles = torch.cat([qkv[:, :, i:i + th, j:j + tw] for i in rows for j in cols])
        outs = self.attend(tiles).split(b)
        total = qkv.new_zeros(b, c3 // 3, h, w)
        count = qkv.new_zeros(1, 1, h, w)
        for out, (i, j) in zip(outs, [(i, j) for i in rows for j in cols]):
            total[:, :, i:i + th, j:j + tw] += out
            count[:, :, i:i + th, j:j + tw] += 1
        return total / count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        qkv = self.qkv_dwconv(self.qkv(x.permute(0, 3, 1, 2)))  # (B, 3C, H, W)
        tiled = self.tlc_kernel is not None and not self.training
        out = self.attend_tiles(qkv) if tiled else self.attend(qkv)
        return self.project_out(out).permute(0, 2, 3, 1)
