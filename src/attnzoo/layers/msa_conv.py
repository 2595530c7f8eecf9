"""TiC's MSA-Conv layer (Zhang et al. 2023, arXiv 2310.04134) on ``(B, H, W, C)`` grids: ``qkv`` projection,
self-attention inside convolution windows (:func:`attnzoo.ops.msa_conv_attention`), output projection; with the
multi-directional cyclic shift and the inter-pooling of the paper as options (both reconstructed, see
:class:`MSAConvAttention`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.msa_conv.functional import msa_conv_attention
from attnzoo.ops.msa_conv.windows import PADDING_KEYS, window_options
from attnzoo.validation import check_flag, check_int, check_scale

DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))
"""The four cyclic-shift directions (down, up, right, left on the ``(H, W)`` axes), taken by the heads in turn."""


def shift_heads(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``(B, heads, X, Y, D)`` with head ``h`` cyclically rolled by ``shift`` pixels in direction
    ``DIRECTIONS[h % 4]`` (``torch.roll``: what leaves one border enters at the opposite one)."""
    return torch.stack([torch.roll(x[:, h], (dx * shift, dy * shift), dims=(1, 2))
                        for h, (dx, dy) in zip(range(x.shape[1]), DIRECTIONS * x.shape[1])], dim=1)


class MSAConvAttention(ShowsOptions, nn.Module):
    """MSA-Conv token mixer: ``(B, H, W, C)`` -> ``(B, H', W', C)`` with conv arithmetic
    ``H' = floor((H + 2p - d(k - 1) - 1) / s) + 1`` (the same size at the defaults: stride 1, ``p = d(k-1)/2``).

    ``qkv`` is a linear map (the official 1x1 ``qkv_conv``), the attention is the op's (each window centre over
    its ``k²`` dilated window; ``padding_keys`` as the op), ``proj`` a linear output projection. The official
    ``MSA_Conv_2d`` (StriveZs/MSA-Conv ``core/op/Transformer_in_Convolution.py``) instead adds the input and applies
    a ``k x k`` convolution with the stride and a ReLU after the attention, one head over all channels; here the
    residual and MLP belong to the model's block, as for every attnzoo mixer, and ``num_heads`` is free.

    Reconstructed options (the paper text beyond its abstract was not available; the official repository has
    the operator only): ``cyclic_shift=s > 0`` — the Multi-Directional Cyclic Shifted Mechanism, read as: each
    head's keys and values are cyclically rolled by ``s`` pixels, head ``h`` in direction ``h mod 4`` (down, up,
    right, left), queries unrolled, so the heads' windows sit ``s`` pixels away in four directions and wrap
    around the borders (long-distance links); ``inter_pooling=p > 1`` — the Inter-Pooling Mechanism, read as: keys
    and values computed from a ``p x p`` average pooling (stride 1, padding excluded) of the input, so each key
    summarises its neighbourhood and the receptive field grows to ``k + p - 1`` (dilation 1). With both off the
    layer is exactly qkv -> op -> proj. Time ``O(H' W' k² C + H W C²)``.
    """

    def __init__(self, dim: int, num_heads: int = 1, kernel_size: int | tuple[int, int] = 3,
                 stride: int | tuple[int, int] = 1, dilation: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | None = None, padding_keys: str = "masked", cyclic_shift: int = 0,
                 inter_pooling: int = 1, qkv_bias: bool = True, scale: float | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        window_options(kernel_size, stride, dilation, padding)
        if padding_keys not in PADDING_KEYS:
            raise ValueError(f"padding_keys={padding_keys!r}: expected one of {list(PADDING_KEYS)}")
        self.cyclic_shift = check_int("cyclic_shift", cyclic_shift, minimum=0)
        self.inter_pooling = check_int("inter_pooling", inter_pooling)
        if inter_pooling % 2 == 0:
            raise ValueError(f"inter_pooling={inter_pooling!r}: expected an odd pooling size (1 = off), so that "
                             "the pooled map keeps the image size")
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads = dim, num_heads
        self.window = {"kernel_size": kernel_size, "stride": stride, "dilation": dilation, "padding": padding}
        self.padding_keys, self.scale, self.impl = padding_keys, check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, H, W, C)`` -> ``(B, H', W', C)``."""
        check_layer_input(self, x, rank=4, dim=self.dim, layout=f"(B, H, W, C={self.dim})")
        q, k, v = split_heads(self.qkv(x), 3 * self.num_heads).chunk(3, dim=1)
        if self.inter_pooling > 1:
            pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), self.inter_pooling, 1, self.inter_pooling // 2,
                                  count_include_pad=False).permute(0, 2, 3, 1)
            _, k, v = split_heads(self.qkv(pooled), 3 * self.num_heads).chunk(3, dim=1)
        if self.cyclic_shift:
            k, v = shift_heads(k, self.cyclic_shift), shift_heads(v, self.cyclic_shift)
        out = msa_conv_attention(q, k, v, **self.window, padding_keys=self.padding_keys, scale=self.scale,
                                 impl=self.impl)
        return self.proj(merge_heads(out))
