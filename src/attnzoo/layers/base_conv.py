"""Zoology's BaseConv layer (arXiv 2312.04927): a linear projection gated by a causal short or long convolution."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.base_conv.functional import base_conv
from attnzoo.validation import check_flag, check_int, check_optional_int


class BaseConv(ShowsOptions, nn.Module):
    """``(B, N, C) -> (B, N, C)``: ``y = act(conv(x)) ⊙ act(Linear(x)) + x`` (``zoology/mixers/base_conv.py``).

    ``kernel_size >= 1``: Zoology's ``ShortConvolution``, a causal depthwise ``Conv1d`` with bias (PyTorch's
    default init). ``kernel_size = -1``: Zoology's explicit ``LongConvolution``, a filter ``(C, l_max)`` drawn
    N(0, 1) with the input added (the ``+ u`` of ``fft_conv``, folded into tap 0), run with ``impl="fft"`` when
    ``impl="auto"`` (float32/64; pass ``impl="direct"`` for half precision). Left out: Zoology's default
    implicit long filter (an MLP over positional features, ``ImplicitLongConvolution``); pass
    ``implicit_long_conv=False`` there to compare. Under ``torch.autocast`` the layer computes in the input's
    dtype: the op takes the weights as tensors, which autocast does not cast (float32 for a float32 input).
    """

    def __init__(self, dim: int, l_max: int | None = None, kernel_size: int = 3, use_act: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        check_int("dim", dim)
        check_flag("use_act", use_act)
        check_int("kernel_size", kernel_size, -1)
        if kernel_size == -1:
            if check_optional_int("l_max", l_max) is None:
                raise ValueError(f"l_max={l_max!r}: a long convolution (kernel_size=-1) needs l_max >= 1")
            self.kernel = nn.Parameter(torch.randn(dim, l_max))
            self.conv_bias = None
        elif kernel_size >= 1:
            bound = 1 / math.sqrt(kernel_size)  # nn.Conv1d's default for a depthwise filter (fan_in = kernel_size)
            self.kernel = nn.Parameter(torch.empty(dim, kernel_size).uniform_(-bound, bound))
            self.conv_bias = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        else:
            raise ValueError(f"kernel_size={kernel_size!r}: expected an int >= 1 (short conv) or -1 (long conv)")
        self.dim, self.long = dim, kernel_size == -1
        self.projection = nn.Linear(dim, dim)
        self.use_act = use_act
        self.impl = "fft" if impl == "auto" and self.long else impl

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, N, C)`` -> ``(B, N, C)``; ``key_padding_mask`` / ``cu_seqlens`` go to :func:`base_conv`
        (a padded token feeds nothing into the convolution; packed sequences start from an empty history)."""
        check_layer_input(self, x, rank=3, dim=self.dim, layout="(B, N, C)")
        kernel = self.kernel
        if self.long:  # fft_conv returns k ∗ u + u: the identity tap added to tap 0
            kernel = torch.cat([kernel[:, :1] + 1, kernel[:, 1:]], dim=1)
        return base_conv(x, kernel, self.projection.weight, self.projection.bias, self.conv_bias,
                         use_act=self.use_act, impl=self.impl, key_padding_mask=key_padding_mask,
                         cu_seqlens=cu_seqlens)
