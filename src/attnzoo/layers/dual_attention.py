"""DANet's position and channel attention modules (PAM, CAM) on ``(B, C, H, W)``, as the official
``src/models/attention.py`` of ``sinAshish/Multi-Scale-Attention`` (paper 23, arXiv 1906.02849) defines them:
the same parameter names (``query_conv``, ``key_conv``, ``value_conv``, ``gamma``), so that an official
``state_dict`` loads as is."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.dual_attention.functional import channel_self_attention, position_self_attention
from attnzoo.ops.feature_maps import LAYOUT
from attnzoo.validation import check_int, check_real


def _gamma(gamma_init: float) -> nn.Parameter:
    return nn.Parameter(torch.full((1,), check_real("gamma_init", gamma_init, minimum=float("-inf"))))


class PositionSelfAttention(ShowsOptions, nn.Module):
    """PAM ``(B, C, H, W)`` -> ``(B, C, H, W)``: ``γ · V softmax_row(Qᵀ K)ᵀ + x`` over the ``H·W`` pixels, 1x1
    convolutions ``query_conv``, ``key_conv`` (``dim -> dim // reduction``, the official ``in_dim // 8``) and
    ``value_conv`` (``dim -> dim``), ``γ`` initialised to ``gamma_init`` (0: the identity at initialisation).
    ``impl`` as :func:`attnzoo.ops.dual_attention.position_self_attention`.

    >>> import torch
    >>> layer = PositionSelfAttention(16)
    >>> layer(torch.randn(2, 16, 5, 7)).shape
    torch.Size([2, 16, 5, 7])
    """

    def __init__(self, dim: int, reduction: int = 8, gamma_init: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("reduction", reduction)
        if dim < reduction:
            raise ValueError(f"dim={dim} with reduction={reduction} leaves no query/key channels "
                             f"(dim // reduction = 0); expected dim >= reduction")
        self.dim, self.impl = dim, impl
        inner = dim // reduction
        self.query_conv = nn.Conv2d(dim, inner, kernel_size=1)
        self.key_conv = nn.Conv2d(dim, inner, kernel_size=1)
        self.value_conv = nn.Conv2d(dim, dim, kernel_size=1)
        self.gamma = _gamma(gamma_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True)
        weights = [autocast_like(t, x) for t in (
            self.query_conv.weight.flatten(1), self.key_conv.weight.flatten(1), self.value_conv.weight.flatten(1),
            self.gamma, self.query_conv.bias, self.key_conv.bias, self.value_conv.bias)]
        return position_self_attention(x, *weights, impl=self.impl)


class ChannelSelfAttention(ShowsOptions, nn.Module):
    """CAM ``(B, C, H, W)`` -> ``(B, C, H, W)``: ``γ · softmax_row(max_row(E) − E) X + x``, ``E = X Xᵀ`` over
    the ``dim`` channels; its only parameter is ``γ`` (initialised to ``gamma_init``, 0: the identity).

    >>> import torch
    >>> layer = ChannelSelfAttention(6)
    >>> layer(torch.randn(2, 6, 4, 3)).shape
    torch.Size([2, 6, 4, 3])
    """

    def __init__(self, dim: int, gamma_init: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.impl = check_int("dim", dim), impl
        self.gamma = _gamma(gamma_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True)
        return channel_self_attention(x, autocast_like(self.gamma, x), impl=self.impl)
