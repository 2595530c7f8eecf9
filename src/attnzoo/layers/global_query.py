"""GC ViT global query attention layer (arXiv 2206.09959): the global query generator of the official
``GlobalQueryGen`` / ``FeatExtract`` / ``SE`` (NVlabs/GCVit ``models/gc_vit.py``) and ``WindowAttentionGlobal``,
optionally preceded by GC ViT's local window block."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.layers.window import WindowAttention2D
from attnzoo.ops.global_query.functional import global_query_attention
from attnzoo.validation import check_flag, check_int, check_scale, per_axis


def global_query_levels(resolution: Sequence[int], window_size: Sequence[int]) -> int:
    """The number ``L`` of stride-2 poolings that take the ``resolution`` grid to one ``window_size`` window:
    ``resolution = window_size · 2^L`` on both axes (GC ViT's 56 -> 7: 3, 28 -> 7: 2, 14 -> 7: 1, 7 -> 7: 0;
    timm's ``int(log2(min(feat_size) / min(window_size)))``, which the official code requires to be exact)."""
    ratios = [r / w for r, w in zip(resolution, window_size)]
    levels = max(0, int(ratios[0]).bit_length() - 1)
    if any(r != 2 ** levels for r in ratios):
        raise ValueError(f"resolution={tuple(resolution)} and window_size={tuple(window_size)}: the global query "
                         "generator halves the grid L times to reach one window, so expected resolution = "
                         "window_size * 2**L on both axes for one L >= 0 (e.g. (14, 14) with window 7)")
    return levels


def default_window(resolution: tuple[int, int]) -> tuple[int, int]:
    """Half of ``resolution`` where both sides are even (``L = 1``), else ``resolution`` (``L = 0``)."""
    return tuple(r // 2 for r in resolution) if all(r % 2 == 0 for r in resolution) else tuple(resolution)


class SqueezeExcite(nn.Module):
    """GC ViT's ``SE`` (official code): ``x · sigmoid(W₂ GELU(W₁ avgpool(x)))`` on ``(B, C, H, W)``, ``W₁``
    ``C -> int(C/4)`` (at least 1), no biases. timm's ``SEModule`` rounds the width to a multiple of 8 instead;
    the two agree for ``C`` a multiple of 32."""

    def __init__(self, dim: int, expansion: float = 0.25) -> None:
        super().__init__()
        hidden = max(1, int(dim * expansion))
        self.fc = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, dim, bias=False),
                                nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class FeatExtract(nn.Module):
    """GC ViT's ``FeatExtract`` (fused-MBConv): ``x + Conv1x1(SE(GELU(DWConv3x3(x))))`` (no biases), then, unless
    ``keep_dim``, ``MaxPool2d(3, stride 2, padding 1)``; ``(B, C, H, W)`` -> ``(B, C, ceil(H/2), ceil(W/2))``."""

    def __init__(self, dim: int, keep_dim: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=False), nn.GELU(),
                                  SqueezeExcite(dim), nn.Conv2d(dim, dim, 1, 1, 0, bias=False))
        self.pool = nn.Identity() if keep_dim else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x + self.conv(x))


class GlobalQueryGenerator(nn.Module):
    """GC ViT's global query generator: ``max(1, levels)`` :class:`FeatExtract` blocks, the first ``levels`` of
    them pooling by 2, so that a ``window · 2^levels`` map becomes one window of global query tokens;
    ``(B, C, H, W)`` -> ``(B, C, H / 2^levels, W / 2^levels)``. The official ``GlobalQueryGen`` /
    timm's ``FeatureBlock`` (3 pooling blocks at 56 -> 7, 2 at 28, 1 at 14 with window 7, one block without
    pooling where the window is the whole map)."""

    def __init__(self, dim: int, levels: int) -> None:
        super().__init__()
        check_int("levels", levels, minimum=0)
        self.blocks = nn.Sequential(*(FeatExtract(dim, keep_dim=i >= levels) for i in range(max(1, levels))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class GlobalQueryAttention(ShowsOptions, nn.Module):
    """GC ViT global query attention on a fixed-resolution map, channels-last ``(B, H, W, C)`` -> ``(B, H, W, C)``.

    As the official ``WindowAttentionGlobal``: the global queries are the generator's output (one window of
    tokens, :class:`GlobalQueryGenerator` on the layer's input), split into ``num_heads`` heads with no
    projection; ``kv = Linear(C, 2C)`` from each window's own tokens; the learnable bias table
    ``(heads, 2w - 1, 2w - 1)`` (truncated normal, std 0.02; indexed ``key - query``, so an official or timm
    ``relative_position_bias_table`` ``((2w-1)², heads)`` loads as ``table.T.reshape(heads, 2w-1, 2w-1)
    .flip(1, 2)``); :func:`attnzoo.ops.global_query_attention`; ``proj = Linear(C, C)``. ``resolution = (H,
    W)`` is fixed at construction (the generator's depth depends on it) and must be ``window_size · 2^L``.

    GC ViT alternates local blocks (window attention, its own ``qkv``) and global blocks inside a stage, the
    global queries computed once from the stage input. ``local_block=True`` (the default) makes this layer one
    such pair as a single mixer: the local window attention (:class:`attnzoo.layers.WindowAttention2D`, no
    shift, with its bias table), then the global block, as two residual sub-layers with a LayerNorm before the
    second; the global queries come from the pair's input, as from the stage input::

        q_g = generator(x),   l = local(x),   out = l + global(LayerNorm(x + l), q_g)

    ``local_block=False`` is the global block alone. The MLPs between GC ViT's blocks belong to the model.
    """

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int],
                 window_size: int | Sequence[int] | None = None,
                 local_block: bool = True, rel_pos_bias: bool = True, qkv_bias: bool = True,
                 scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        check_heads(dim, num_heads)
        for name, flag in (("local_block", local_block), ("rel_pos_bias", rel_pos_bias), ("qkv_bias", qkv_bias)):
            check_flag(name, flag)
        self.dim, self.num_heads = dim, num_heads
        self.resolution = per_axis(resolution, 2, "resolution")
        self.window_size = default_window(self.resolution) if window_size is None else per_axis(window_size, 2,
                                                                                                "window_size")
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.generator = GlobalQueryGenerator(dim, global_query_levels(self.resolution, self.window_size))
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rpb = None
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.empty(num_heads, *(2 * w - 1 for w in self.window_size)))
            nn.init.trunc_normal_(self.rpb, std=0.02)
        self.local: WindowAttention2D | None = None
        self.norm: nn.LayerNorm | None = None
        if local_block:
            self.local = WindowAttention2D(dim, num_heads, self.window_size, rel_pos_bias=rel_pos_bias,
                                           qkv_bias=qkv_bias, scale=scale, impl=impl)
            self.norm = nn.LayerNorm(dim)

    def global_queries(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's global queries of ``x`` ``(B, H, W, C)``: ``(B, wx, wy, C)``."""
        return self.generator(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def global_attention(self, x: torch.Tensor, q_global: torch.Tensor) -> torch.Tensor:
        """The global block alone: keys and values from ``x`` ``(B, H, W, C)``, queries ``q_global``
        ``(B, wx, wy, C)`` -> ``(B, H, W, C)``."""
        k, v = split_heads(self.kv(x), 2 * self.num_heads).chunk(2, dim=1)  # (B, heads, H, W, d) each
        q = autocast_like(split_heads(q_global, self.num_heads), k)  # the generator's residual sum stays float32
        out = global_query_attention(q, k, v, self.window_size, rpb=autocast_like(self.rpb, k), scale=self.scale,
                                     impl=self.impl)
        return self.proj(merge_heads(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        if tuple(x.shape[1:3]) != self.resolution:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected 4-D (B, H, W, C) with (H, W) = "
                             f"{self.resolution}, the layer's resolution")
        q_global = self.global_queries(x)
        if self.local is None:
            return self.global_attention(x, q_global)
        local = self.local(x)
        return local + self.global_attention(self.norm(x + local), q_global)
