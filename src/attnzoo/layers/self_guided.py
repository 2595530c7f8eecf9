"""SG-Former's self-guided attention layer (arXiv 2308.12216), the official ``Attention`` of ``sgformer.py`` with
``mask=True`` (``OliverRensu/SG-Former``, read): keys and values reallocated by a significance map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.hybrid_scale import check_grid_fits, check_two_head_groups, local_positional_encoding
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.hybrid_scale.functional import hybrid_scale_attention
from attnzoo.ops.self_guided.functional import check_int_sequence, self_guided_attention
from attnzoo.ops.self_guided.plan import split_sizes
from attnzoo.validation import check_flag, check_scale, per_axis


class SelfGuidedAttention(ShowsOptions, nn.Module):
    """Self-guided attention on channels-last input ``(B, H, W, C)`` (and a significance map ``(B, H, W)``) ->
    ``(B, H, W, C)``.

    As the official module: ``q = Linear(C, C)(x)`` for all heads; the pixels ranked by ascending significance
    are cut into groups of relative sizes ``split`` (official: ``(1, 2, 1)``, the quarters ``[:N//4]``,
    ``[N//4:3N//4]``, ``[3N//4:]``; ``(1, 1)`` at sr 2) and group ``l`` merged ``rates[l]`` -> 1 by ``f{l+1} =
    Linear(rates[l], 1)`` (official rates: 196, 56, 28 at sr 8; 49, 14, 7 at sr 4; 2, 1 at sr 2); the merged
    tokens of the row-major ranking give ``kv1 = Linear(C, C)`` keys and values for the first ``h/2`` heads,
    those of the column-major ranking ``kv2`` for the others (the two rankings differ only among equal
    significances; ties are broken by position, deterministically); output ``proj(attention +
    DWConv3x3(Linear(x)))``. Parameter names are the official ones (``q``, ``kv1``, ``kv2``, ``f1``...,
    ``lepe_linear``, ``lepe_conv``, ``proj``): an official state dict loads.

    ``forward(x, significance)`` uses the map of the preceding :class:`HybridScaleAttention`, as the official
    model does: in its first three stages even blocks are hybrid-scale and odd blocks self-guided, each map
    feeding the next block only. ``forward(x)`` alone (a standalone mixer, as in ``attnzoo``'s models) uses
    the layer's own map instead, an attnzoo addition: the official significance rule applied to this layer's own
    queries and keys, without gradient: the first half of the heads attending to keys average-pooled
    ``sr_ratio x sr_ratio`` (mean over heads and all queries, upsampled nearest) plus the second half attending
    inside ``window_size`` windows (mean over heads and window queries). ``sr_ratio`` and ``window_size`` serve
    only that; under autocast that map is computed at the parameters' precision (it only orders the pixels, and
    rounding would reorder near-equal significances). Differences: merging is done on the projected keys and values
    (the same by linearity; the merge bias becomes a per-level key/value offset), merge weights start as averages
    ``1/rate`` with bias 0 (the official model initialises them with a truncated normal, std 0.02, like every
    ``Linear``), and the rates must divide their groups on the grid the layer sees (the official code needs that
    too).
    """

    def __init__(self, dim: int, num_heads: int, rates: Sequence[int] = (4, 2, 1), split: Sequence[int] = (1, 2, 1),
                 sr_ratio: int | Sequence[int] = 2, window_size: int | Sequence[int] = 7, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        check_two_head_groups(num_heads)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads = dim, num_heads
        self.rates, self.split = check_int_sequence("rates", rates), check_int_sequence("split", split)
        if len(self.rates) != len(self.split):
            raise ValueError(f"rates={rates!r}: expected one rate per group of split={split!r} "
                             f"({len(self.split)} groups)")
        self.sr_ratio = per_axis(sr_ratio, 2, "sr_ratio")
        self.window_size = per_axis(window_size, 2, "window_size")
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)
        for level, rate in enumerate(self.rates):
            merge = nn.Linear(rate, 1)
            nn.init.constant_(merge.weight, 1 / rate)
            nn.init.zeros_(merge.bias)
            setattr(self, f"f{level + 1}", merge)
        self.lepe_linear = nn.Linear(dim, dim)
        self.lepe_conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def merges(self) -> list[nn.Linear]:
        """The per-level merge layers ``f1``, ``f2``, ... (least significant level first)."""
        return [getattr(self, f"f{level + 1}") for level in range(len(self.rates))]

    def group_sizes(self, grid: tuple[int, int]) -> tuple[int, ...]:
        """The pixels of each significance group on ``grid``; raises unless every rate divides its group."""
        sizes = split_sizes(grid[0] * grid[1], self.split)
        if any(size == 0 or size % rate for size, rate in zip(sizes, self.rates)):
            raise ValueError(f"rates={self.rates}: the input grid (H, W) = {grid} has {grid[0] * grid[1]} pixels, "
                             f"split {self.split} gives groups of {sizes}; expected each rate to divide its "
                             "(non-empty) group")
        return sizes

    def merge_offsets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(levels, heads, d)`` key and value offsets of the merged tokens: the official merge bias ``b_l``
        (added to every channel of a merged input token) through ``kv1`` / ``kv2``, plus their own bias:
        ``b_l · W 1 + c``."""
        bias = torch.cat([merge.bias for merge in self.merges()])  # (levels,)
        parts = []
        for kv in (self.kv1, self.kv2):
            offset = bias[:, None] * kv.weight.sum(1) + (0 if kv.bias is None else kv.bias)  # (levels, C)
            parts.append(offset.unflatten(1, (2, self.num_heads // 2, self.head_dim)))
        return torch.cat([p[:, 0] for p in parts], dim=1), torch.cat([p[:, 1] for p in parts], dim=1)

    def own_significance(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` map of this layer's own queries and keys ``(B, heads, H, W, d)`` (see the class
        docstring), without gradient."""
        half, impl = self.num_heads // 2, "reference" if self.impl == "reference" else "auto"
        with torch.no_grad():
            first = key[:, :half].movedim(-1, 2).flatten(0, 1)  # (B·h/2, d, H, W)
            pooled = F.avg_pool2d(first, self.sr_ratio).unflatten(0, (key.shape[0], half)).movedim(2, -1)
            options = {"scale": self.scale, "return_significance": True, "impl": impl}
            _, wide = hybrid_scale_attention(query[:, :half], pooled, pooled[..., :1], self.sr_ratio, **options)
            _, local = hybrid_scale_attention(query[:, half:], key[:, half:], key[:, half:, ..., :1], 1,
                                              self.window_size, **options)
        return wide + local

    def projections(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pixel ``q`` (``(B, heads, H, W, d)``, all heads) and the keys and values of ``kv1`` (first half of
        the heads) and ``kv2`` (second half) without their biases, which :meth:`merge_offsets` carries."""
        half = self.num_heads // 2
        k1, v1 = split_heads(F.linear(x, self.kv1.weight), 2 * half).chunk(2, dim=1)
        k2, v2 = split_heads(F.linear(x, self.kv2.weight), 2 * half).chunk(2, dim=1)
        return split_heads(self.q(x), self.num_heads), torch.cat([k1, k2], dim=1), torch.cat([v1, v2], dim=1)

    def forward(self, x: torch.Tensor, significance: torch.Tensor | None = None) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        grid = tuple(x.shape[1:3])
        sizes = self.group_sizes(grid)
        q, key, value = self.projections(x)
        if significance is None:
            check_grid_fits(grid, self.sr_ratio, self.window_size)
            if torch.is_autocast_enabled(x.device.type):
                # the map only orders the pixels, and rounding reorders near-equal ones: take it at full precision
                with torch.autocast(x.device.type, enabled=False):
                    significance = self.own_significance(*self.projections(x.to(self.q.weight.dtype))[:2])
            else:
                significance = self.own_significance(q, key)
        key_bias, value_bias = self.merge_offsets()
        pool_weight = torch.cat([merge.weight.flatten() for merge in self.merges()])
        out = self_guided_attention(q, key, value, significance, sizes, self.rates, autocast_like(pool_weight, q),
                                    autocast_like(key_bias, q), autocast_like(value_bias, q),
                                    tie_breaks=("row", "column"), scale=self.scale, impl=self.impl)
        return self.proj(merge_heads(out) + local_positional_encoding(self.lepe_linear, self.lepe_conv, x))
