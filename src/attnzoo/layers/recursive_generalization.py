"""RG-SA layer (RGT, arXiv 2303.06373): the official ``RG_SA`` of zhengchen1999/RGT ``basicsr/archs/rgt_arch.py``
(recursive generalization module, cross-attention to the representatives, CPE on the values)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.recursive_generalization.functional import recursive_generalization_attention
from attnzoo.validation import check_flag, check_int, check_optional_int, check_real, check_scale


def official_levels(grid: tuple[int, int], training: bool) -> int:
    """The official number of recursions ``T`` for an ``(H, W)`` map: in training
    ``max(⌊log₄(H // 4)⌋, ⌊log₄(W // 4)⌋)``, in evaluation ``max(⌊log₄(H // 16)⌋, ⌊log₄(W // 16)⌋)`` and at least
    2 ("testing _time must equal or larger than training _time (2)", tuned for 64 x 64 training patches, where
    both give 2). The official ``math.log`` fails where a quotient is 0: raised here by name."""
    divisor, smallest = (4, 4) if training else (16, 16)
    if min(grid) < smallest:
        mode = "training" if training else "evaluation"
        raise ValueError(f"levels=None (the official rule) needs H, W >= {smallest} in {mode} (log4(H // "
                         f"{divisor}) is undefined below); got a {grid[0]}x{grid[1]} map: pass levels=T")
    levels = max(((side // divisor).bit_length() - 1) // 2 for side in grid)  # exact floor(log4(n)), n >= 1
    return levels if training else max(levels, 2)


class RecursiveGeneralizationAttention(ShowsOptions, nn.Module):
    """RG-SA on channels-last input ``(B, H, W, C)`` -> ``(B, H, W, C)``.

    As the official ``RG_SA`` (its parameter names, so an RGT checkpoint's ``attn`` entries load): the map is
    reduced ``T`` times by the *same* depthwise ``reduction1 = Conv2d(C, C, 4, stride 4, groups=C)``, then
    ``conv(dwconv(·))`` (DWConv 3x3, 1x1 to ``C' = int(C · c_ratio)``), ``norm_act`` (LayerNorm + GELU): ``M``
    representatives. ``q = Linear(C, C')(x)``, ``k = Linear(C', C')``, ``v = Linear(C', C)`` of the
    representatives, ``num_heads`` heads (q/k head dim ``C'/h``, v head dim ``C/h``), the values plus the CPE
    ``cpe = DWConv3x3`` of their small map, :func:`attnzoo.ops.recursive_generalization_attention` with the
    official scale ``(C/h · c_ratio)^{-1/2}`` (``scale`` overrides it), ``proj = Linear(C, C)``.

    ``levels`` is ``T``: ``None`` follows the official rule (:func:`official_levels`: it depends on the map and
    on ``self.training``, 2 for 64 x 64 in both modes; it needs maps of at least 4 (training) / 16 (evaluation)
    pixels a side); an int fixes ``T`` in both modes (``0``: every token is a representative). ``reduction`` is
    the convolution's kernel and stride (official 4). Where a side is not divisible, each reduction first
    zero-pads its input at the bottom / right to a multiple of ``reduction`` (the window layers' convention):
    the official code's convolution drops those last rows and columns instead, so the two agree exactly on
    divisible maps (``H, W`` multiples of ``4^T``); ``M = ceil(H / r^T) · ceil(W / r^T)``. A ``T`` that keeps
    reducing a map that is already one token is refused. The HAI residual of RGT's block lives in
    :class:`attnzoo.layers.RGTBlock`, which owns the residual stream.
    """

    def __init__(self, dim: int, num_heads: int, levels: int | None = None, reduction: int = 4,
                 c_ratio: float = 0.5, qkv_bias: bool = True, scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        head_dim = check_heads(dim, num_heads)
        self.levels = check_optional_int("levels", levels, minimum=0)
        self.reduction = check_int("reduction", reduction, minimum=2)
        check_real("c_ratio", c_ratio)
        check_flag("qkv_bias", qkv_bias)
        reduced = int(dim * c_ratio)
        if reduced < num_heads or reduced % num_heads:
            raise ValueError(f"c_ratio={c_ratio!r}: the reduced width int(dim * c_ratio) = {reduced} must be a "
                             f"positive multiple of num_heads={num_heads} (the query/key heads split it)")
        if levels is None and reduction != 4:
            raise ValueError(f"reduction={reduction}: levels=None (the official rule) is defined for reduction=4; "
                             "pass levels=T")
        self.dim, self.num_heads, self.reduced, self.impl = dim, num_heads, reduced, impl
        self.scale = check_scale("scale", scale, (head_dim * c_ratio) ** -0.5)
        self.reduction1 = nn.Conv2d(dim, dim, kernel_size=reduction, stride=reduction, groups=dim)
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.conv = nn.Conv2d(dim, reduced, kernel_size=1, stride=1)
        self.norm_act = nn.Sequential(nn.LayerNorm(reduced), nn.GELU())
        self.q = nn.Linear(dim, reduced, bias=qkv_bias)
        self.k = nn.Linear(reduced, reduced, bias=qkv_bias)
        self.v = nn.Linear(reduced, dim, bias=qkv_bias)
        self.cpe = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def recursion_levels(self, grid: tuple[int, int]) -> int:
        """``T`` for an ``(H, W)`` map (``levels``, or the official rule in the current mode), checked."""
        levels = official_levels(grid, self.training) if self.levels is None else self.levels
        size, useful = list(grid), 0
        while max(size) > 1:
            size, useful = [-(-s // self.reduction) for s in size], useful + 1
        if levels > useful:
            raise ValueError(f"levels={levels}: with reduction {self.reduction} a {grid[0]}x{grid[1]} map is one "
                             f"token after {useful} levels; expected levels <= {useful}")
        return levels

    def representatives(self, x: torch.Tensor) -> torch.Tensor:
        """The recursive generalization module: ``(B, H, W, C)`` -> representatives ``(B, h', w', C')``."""
        rep = x.permute(0, 3, 1, 2)
        for _ in range(self.recursion_levels(tuple(x.shape[1:3]))):
            rep = self.reduction1(F.pad(rep, (0, -rep.shape[3] % self.reduction, 0, -rep.shape[2] % self.reduction)))
        return self.norm_act(self.conv(self.dwconv(rep)).permute(0, 2, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        rep = self.representatives(x)  # (B, h', w', C')
        v = self.v(rep)  # (B, h', w', C)
        v = v + self.cpe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        q = split_heads(self.q(x).flatten(1, 2), self.num_heads)  # (B, heads, N, C'/h)
        k = split_heads(self.k(rep).flatten(1, 2), self.num_heads)  # (B, heads, M, C'/h)
        out = recursive_generalization_attention(q, k, split_heads(v.flatten(1, 2), self.num_heads),
                                                 scale=self.scale, impl=self.impl)
        return self.proj(merge_heads(out)).unflatten(1, x.shape[1:3])
