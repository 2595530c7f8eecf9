"""SG-Former's hybrid-scale attention layer (arXiv 2308.12216), the official ``Attention`` of ``sgformer.py``
with ``mask=False`` and ``sr_ratio > 1`` (``OliverRensu/SG-Former``, read): the block that estimates the
significance map the next (self-guided) block reallocates its keys by."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.hybrid_scale.functional import hybrid_scale_attention
from attnzoo.validation import check_flag, check_scale, per_axis


def check_two_head_groups(num_heads: int) -> None:
    """SG-Former splits the heads into two halves (two scales, or two tie-break orders): an even count."""
    if num_heads % 2:
        raise ValueError(f"num_heads={num_heads}: expected an even number (SG-Former splits the heads into two "
                         "groups of num_heads / 2)")


def check_grid_fits(grid: tuple[int, int], sr_ratio: tuple[int, int], window_size: tuple[int, int]) -> None:
    """The ``(H, W)`` input grid must be divisible by ``sr_ratio`` (the global keys are an ``s x s``, stride ``s``
    convolution of it) and by ``window_size`` (the local windows); nothing is padded, as in the official code."""
    for name, sizes in (("sr_ratio", sr_ratio), ("window_size", window_size)):
        if any(n % s for n, s in zip(grid, sizes)):
            raise ValueError(f"{name}={sizes}: expected a divisor of the input grid (H, W) = {grid} on both axes")


def local_positional_encoding(linear: nn.Linear, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The official LePE term ``DWConv3x3(Linear(x))`` on ``(B, H, W, C)``, added to the attention output."""
    return conv(linear(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class HybridScaleAttention(ShowsOptions, nn.Module):
    """Hybrid-scale attention on channels-last input ``(B, H, W, C)`` -> ``(B, H, W, C)``.

    As the official module: heads in two halves. Global half: ``q1 = Linear(C, C/2)(x)``, keys and values
    ``kv1 = Linear(C, C)`` of ``GELU(LN(Conv2d(C, C, sr, stride sr)(x)))``, attention over the whole reduced map.
    Local half: ``q2 = Linear(C, C/2)(x)``, ``kv2 = Linear(C, C)(x)``, attention inside ``window_size`` windows
    (7 in the official code). Output ``proj(concat(global, local) + DWConv3x3(Linear(x)))``. Significance map
    ``(B, H, W)``: the local half's attention received per key (mean over heads and window queries) plus the
    global half's (mean over heads and all queries, upsampled nearest), detached; ``forward(x,
    return_significance=True)`` returns ``(out, significance)`` to feed a :class:`SelfGuidedAttention`.
    Parameter names are the official ones (``sr``, ``norm``, ``q1``, ``kv1``, ``q2``, ``kv2``, ``lepe_linear``,
    ``lepe_conv``, ``proj``): an official state dict loads. Differences: the grid must be divisible by
    ``sr_ratio`` and ``window_size`` (the official code needs that too but does not say so), ``sr_ratio = 1``
    is allowed (the official ``sr_ratio = 1`` block is plain attention instead), and PyTorch's default
    initialisation (the official model re-initialises every ``Linear`` with a truncated normal, std 0.02).
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int | Sequence[int] = 8,
                 window_size: int | Sequence[int] = 7, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        check_heads(dim, num_heads)
        check_two_head_groups(num_heads)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads = dim, num_heads
        self.sr_ratio = per_axis(sr_ratio, 2, "sr_ratio")
        self.window_size = per_axis(window_size, 2, "window_size")
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.sr = nn.Conv2d(dim, dim, kernel_size=self.sr_ratio, stride=self.sr_ratio)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()
        self.q1 = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
        self.q2 = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)
        self.lepe_linear = nn.Linear(dim, dim)
        self.lepe_conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor,
                return_significance: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        check_flag("return_significance", return_significance)
        check_grid_fits(tuple(x.shape[1:3]), self.sr_ratio, self.window_size)
        half = self.num_heads // 2
        reduced = self.act(self.norm(self.sr(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)))  # (B, H/s, W/s, C)
        k1, v1 = split_heads(self.kv1(reduced), 2 * half).chunk(2, dim=1)
        k2, v2 = split_heads(self.kv2(x), 2 * half).chunk(2, dim=1)
        options = {"scale": self.scale, "return_significance": return_significance, "impl": self.impl}
        wide = hybrid_scale_attention(split_heads(self.q1(x), half), k1, v1, self.sr_ratio, None, **options)
        local = hybrid_scale_attention(split_heads(self.q2(x), half), k2, v2, 1, self.window_size, **options)
        outputs = (wide[0], local[0]) if return_significance else (wide, local)
        out = torch.cat([merge_heads(o) for o in outputs], dim=-1)
        out = self.proj(out + local_positional_encoding(self.lepe_linear, self.lepe_conv, x))
        return (out, (wide[1] + local[1]).detach()) if return_significance else out
