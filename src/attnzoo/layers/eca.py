"""ECA, efficient channel attention (arXiv 1910.03151): the ``(B, C, H, W)`` module."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.eca.functional import eca_kernel_size, efficient_channel_attention
from attnzoo.ops.feature_maps import check_odd_int
from attnzoo.validation import check_flag, check_int


class EfficientChannelAttention(ShowsOptions, nn.Module):
    """``(B, C, H, W) -> (B, C, H, W)``: ``x ⊙ σ(conv1d_k(GAP(x)))`` (:func:`~attnzoo.ops.efficient_channel_attention`).

    ``dim``: the channels C. ``kernel_size``: the taps ``k`` (odd); ``None`` takes the paper's adaptive
    ``ψ(C)`` (:func:`~attnzoo.ops.eca.functional.eca_kernel_size` with ``gamma``, ``beta``; 3 for C = 64). The
    ``k`` parameters live in ``self.conv``, an ``nn.Conv1d(1, 1, k, bias=False)`` as in the official
    ``eca_module.py`` and timm's ``EcaModule`` (their state dicts load as they are), with PyTorch's default
    init. ``circular``: circular padding of the channel axis (timm's ``CecaModule``). Placement in a ResNet: after
    the last BatchNorm of the residual branch, before the addition (as SE).

    >>> import torch
    >>> layer = EfficientChannelAttention(64)
    >>> layer.conv.kernel_size, sum(p.numel() for p in layer.parameters())
    ((3,), 3)
    >>> layer(torch.randn(2, 64, 7, 7)).shape
    torch.Size([2, 64, 7, 7])
    """

    def __init__(self, dim: int, kernel_size: int | None = None, gamma: float = 2.0, beta: float = 1.0,
                 circular: bool = False, impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        adaptive = eca_kernel_size(dim, gamma, beta)
        self.kernel_size = adaptive if kernel_size is None else check_odd_int("kernel_size", kernel_size)
        self.circular = check_flag("circular", circular)
        pad = (self.kernel_size - 1) // 2
        if circular and pad > dim:
            raise ValueError(f"kernel_size={self.kernel_size}: circular=True pads (k - 1) / 2 = {pad} channels on "
                             f"each side, expected at most dim={dim}")
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=pad, bias=False)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, C, H, W)", channels_first=True)
        weight = autocast_like(self.conv.weight, x).view(-1)
        return efficient_channel_attention(x, weight, circular=self.circular, impl=self.impl)
