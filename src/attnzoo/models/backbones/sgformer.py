"""SG-Former (Ren et al. 2023, arXiv 2308.12216) scaled down to 28x28 Fashion-MNIST.

Kept from the paper (official OliverRensu/SG-Former ``sgformer.py``, commit b982803c, read): the convolutional
``Head`` stem (3x3 Conv + GroupNorm(1) layers with GELU between, then LayerNorm) and a 2-D sin-cos position
embedding (a trainable parameter initialised so, as the official ``pos_embed``) added after it; the
``PatchMerging`` downsampler (1x1, GELU, depthwise 3x3 stride 2, GELU, 1x1, each Conv + GroupNorm(1)); pre-norm
blocks ``x + attn(LN(x))``, ``x + MLP(LN(x))`` with the DWConv MLP (``fc2(GELU(h + DWConv3x3(h)))``, ``h =
fc1(x)``, ratio 4); in the stages with ``sr_ratio > 1`` the blocks alternate hybrid-scale attention (even index,
``hybrid_scale_attention``: half the heads on the ``sr``-reduced map, half in 7x7 windows; it returns the
significance map) and self-guided attention (odd index, ``self_guided_attention`` fed that map: keys and values
merged by significance, the official rates ``(2, 1)`` over halves at ``sr = 2``); the last stage (``sr_ratio =
1``) is plain multi-head attention with the LePE term (``softmax_attention``, the LePE ``DWConv3x3(Linear(x))``
added before its output projection: ``proj(a + lepe) = attn(x) + lepe Wᵀ``, the official ``proj(x + lepe)``);
qkv bias on; a LayerNorm after each stage (blocks and stages: epsilon 1e-6); token mean; linear head.

Scaled: the stem's second stride-2 convolution has stride 1 (SG-Former: stride 4), so the two stages sit at
14x14 and 7x7, which are the grids and settings of SG-Former's last two stages (``sr_ratio`` 2 with windows of 7
at 14x14, plain attention at 7x7); two stages (four) of widths ``(64, 128)`` (SG-Former-S: 64 ... 512), depths
``(2, 3)`` ((2, 4, 16, 1)), 32 channels per head as SG-Former-S. About 0.9 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.hybrid_scale import local_positional_encoding
from attnzoo.models.backbones.common import (
    ImageClassifier,
    channels_first,
    channels_last,
    mixer,
    positive_ints,
    stage_lists,
)
from attnzoo.models.registry import register_model
from attnzoo.registry import get_variant
from attnzoo.validation import check_int

SELF_GUIDED_PLAN = {2: ((2, 1), (1, 1)), 4: ((49, 14, 7), (1, 2, 1)), 8: ((196, 56, 28), (1, 2, 1))}
"""The official self-guided merge rates and group split per ``sr_ratio``."""
LAYER_NORM_EPS = 1e-6
"""The official models' block and stage LayerNorm epsilon (the stem's LayerNorm keeps PyTorch's 1e-5, as there)."""


def conv_gn(in_dim: int, out_dim: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """The official ``Conv2d_BN``: a bias-free ``Conv2d`` then ``GroupNorm(1)`` (the official code's norm)."""
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, kernel_size, stride, kernel_size // 2, groups=groups,
                                   bias=False), nn.GroupNorm(1, out_dim))


def sincos_2d(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """MAE's ``get_2d_sincos_pos_embed`` ``(H, W, dim)``: the first half encodes the column, the second the row,
    each ``(sin, cos)`` of the position times ``10000^(-k / (dim / 4))``."""
    if dim % 4:
        raise ValueError(f"dims[0]={dim}: the 2-D sin-cos position embedding needs a multiple of 4")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid[0], dtype=torch.float64),
                                torch.arange(grid[1], dtype=torch.float64), indexing="ij")
    parts = [f(axis[..., None] * omega) for axis in (cols, rows) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=-1).float()


class DWConvMlp(nn.Module):
    """The official ``Mlp`` on ``(B, H, W, C)``: ``fc2(GELU(h + DWConv3x3(h)))`` with ``h = fc1(x)``."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(self.act(h + channels_last(self.dwconv(channels_first(h)))))


class LePEAttention(nn.Module):
    """The official ``sr_ratio = 1`` attention on ``(B, H, W, C)``: multi-head attention over all tokens
    (``softmax_attention``) with LePE added before the output projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attn = mixer("softmax_attention", dim=dim, num_heads=num_heads, is_causal=False, qkv_bias=True)
        self.lepe_linear = nn.Linear(dim, dim)
        self.lepe_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lepe = local_positional_encoding(self.lepe_linear, self.lepe_conv, x)
        return self.attn(x.flatten(1, 2)).unflatten(1, x.shape[1:3]) + F.linear(lepe, self.attn.proj.weight)


class SGBlock(nn.Module):
    """A pre-norm SG-Former block on ``(B, H, W, C)``; ``kind`` is ``"hybrid"`` (returns its significance map),
    ``"guided"`` (takes the previous block's) or ``"plain"``."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float, kind: str) -> None:
        super().__init__()
        self.norm1, self.attn, self.kind = nn.LayerNorm(dim, eps=LAYER_NORM_EPS), attn, kind
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=LAYER_NORM_EPS), DWConvMlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, significance: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.norm1(x)
        if self.kind == "hybrid":
            out, significance = self.attn(h, return_significance=True)
        else:
            out, significance = (self.attn(h, significance) if self.kind == "guided" else self.attn(h)), None
        x = x + out
        return x + self.mlp(self.norm2(x)), significance


def sg_block(dim: int, num_heads: int, sr_ratio: int, window: int, mlp_ratio: float, index: int) -> SGBlock:
    """Block ``index`` of a stage: plain at ``sr_ratio = 1``, else hybrid-scale (even) / self-guided (odd)."""
    if sr_ratio == 1:
        return SGBlock(dim, LePEAttention(dim, num_heads), mlp_ratio, "plain")
    if index % 2 == 0:
        attn = mixer("hybrid_scale_attention", dim=dim, num_heads=num_heads, sr_ratio=sr_ratio, window_size=window,
                     qkv_bias=True)
        return SGBlock(dim, attn, mlp_ratio, "hybrid")
    rates, split = SELF_GUIDED_PLAN[sr_ratio]
    attn = mixer("self_guided_attention", dim=dim, num_heads=num_heads, rates=rates, split=split, sr_ratio=sr_ratio,
                 window_size=window, qkv_bias=True)
    return SGBlock(dim, attn, mlp_ratio, "guided")


@register_model("sgformer", paper=get_variant("hybrid_scale_attention").paper,
                mixers=("hybrid_scale_attention", "self_guided_attention", "softmax_attention"))
class SGFormer(ImageClassifier):
    """SG-Former: hybrid-scale and self-guided attention blocks, then plain attention, scaled to 28x28 (see the
    module docstring).

    Args:
        in_channels, num_classes, image_size: the images and classes (Fashion-MNIST: 1, 10, 28).
        dims, depths, num_heads, sr_ratios: per stage, the width, the blocks, the heads (even where
            ``sr_ratio > 1``) and the key reduction (1, 2, 4 or 8; 1: plain attention). Where ``sr_ratio > 1``
            the stage's grid must be divisible by ``sr_ratio`` and by the window, and hold the official merge
            rates.
        window_size: the hybrid-scale local window (7 in the official code).
        mlp_ratio: MLP hidden width / width.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | Sequence[int] = 28,
                 dims: Sequence[int] = (64, 128), depths: Sequence[int] = (2, 3), num_heads: Sequence[int] = (2, 4),
                 sr_ratios: Sequence[int] = (2, 1), window_size: int = 7, mlp_ratio: float = 4.0) -> None:
        stages = stage_lists(dims=dims, depths=depths, num_heads=num_heads, sr_ratios=sr_ratios)
        super().__init__(in_channels, num_classes, image_size, stride=2 ** stages)
        dims, depths = positive_ints("dims", dims), positive_ints("depths", depths)
        heads, sr_ratios = positive_ints("num_heads", num_heads), positive_ints("sr_ratios", sr_ratios)
        window_size = check_int("window_size", window_size)
        bad = [(i, s) for i, s in enumerate(sr_ratios) if s != 1 and s not in SELF_GUIDED_PLAN]
        if bad:
            raise ValueError(f"sr_ratios={tuple(sr_ratios)}: expected 1 or one of {tuple(SELF_GUIDED_PLAN)} (the "
                             f"official merge plans), got {bad} (index, sr_ratio)")
        grids = self.stage_grids(stages)
        self.stem = nn.Sequential(conv_gn(in_channels, dims[0], 3, stride=2), nn.GELU(), conv_gn(dims[0], dims[0], 3),
                                  nn.GELU(), conv_gn(dims[0], dims[0], 3))
        self.stem_norm = nn.LayerNorm(dims[0])
        self.pos_embed = nn.Parameter(sincos_2d(dims[0], grids[0])[None])
        self.merges, self.stages, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in range(stages):
            if i > 0:
                self.merges.append(nn.Sequential(conv_gn(dims[i - 1], dims[i], 1), nn.GELU(),
                                                 conv_gn(dims[i], dims[i], 3, stride=2, groups=dims[i]), nn.GELU(),
                                                 conv_gn(dims[i], dims[i], 1)))
            self.stages.append(nn.ModuleList(sg_block(dims[i], heads[i], sr_ratios[i], window_size, mlp_ratio, j)
                                             for j in range(depths[i])))
            self.norms.append(nn.LayerNorm(dims[i], eps=LAYER_NORM_EPS))
        self.head = nn.Linear(dims[-1], num_classes)
        self._check_grids(grids)

    def _check_grids(self, grids: list[tuple[int, ...]]) -> None:
        """Run each stage's first blocks on a zero map of its grid, so that a grid the layers cannot take (not
        divisible by ``sr_ratio`` or the window, too small for the merge rates) fails at construction with the
        layer's own error, prefixed by the stage."""
        with torch.no_grad():
            for i, (grid, blocks) in enumerate(zip(grids, self.stages)):
                x, significance = torch.zeros(1, *grid, blocks[0].norm1.normalized_shape[0]), None
                try:
                    for block in list(blocks)[:2]:
                        x, significance = block(x, significance)
                except ValueError as error:
                    raise ValueError(f"stage {i} on its {grid[0]}x{grid[1]} grid (image_size={self.image_size}): "
                                     f"{error}") from None

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem_norm(channels_last(self.stem(images))) + self.pos_embed
        for i, (blocks, norm) in enumerate(zip(self.stages, self.norms)):
            if i > 0:
                x = channels_last(self.merges[i - 1](channels_first(x)))
            significance = None
            for block in blocks:
                x, significance = block(x, significance)
            x = norm(x)
        return self.head(x.mean(dim=(1, 2)))
