"""ULSAM, the ultra-lightweight subspace attention module (arXiv 2006.15102): the ``(B, C, H, W)`` module."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import check_divisible, check_norm_options
from attnzoo.ops.ulsam.functional import subspace_attention
from attnzoo.validation import check_int


class SubspaceAttention(ShowsOptions, nn.Module):
    """``(B, C, H, W) -> (B, C, H, W)``: ULSAM with ``num_subspaces`` subspaces
    (:func:`~attnzoo.ops.ulsam.functional.subspace_attention`).

    The ``g`` subspaces' modules of the official ``ulsam.py`` are held stacked: ``dw`` (``nn.Conv2d(C, C, 1,
    groups=C)``, the ``g`` depthwise convolutions side by side), ``dw_norm`` (``BatchNorm2d(C)``), ``pw``
    (``nn.Conv2d(C, g, 1, groups=g)``, the ``g`` pointwise convolutions) and ``pw_norm`` (``BatchNorm2d(g)``), both
    norms with the official ``momentum=0.9``; PyTorch's default init, as the official code. ``5C + 3g``
    parameters. The official constructor's ``nout``, ``h``, ``w`` are unused there and left out here.

    >>> import torch
    >>> layer = SubspaceAttention(64, num_subspaces=4)
    >>> sum(p.numel() for p in layer.parameters()) == 5 * 64 + 3 * 4
    True
    >>> layer(torch.randn(2, 64, 9, 7)).shape
    torch.Size([2, 64, 9, 7])
    """

    def __init__(self, dim: int, num_subspaces: int = 4, momentum: float = 0.9, eps: float = 1e-5,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_subspaces = check_int("dim", dim), check_int("num_subspaces", num_subspaces)
        check_divisible("dim", dim, "num_subspaces", num_subspaces)
        check_norm_options(False, momentum, eps)
        self.dw = nn.Conv2d(dim, dim, 1, groups=dim)
        self.dw_norm = nn.BatchNorm2d(dim, eps=eps, momentum=momentum)
        self.pw = nn.Conv2d(dim, num_subspaces, 1, groups=num_subspaces)
        self.pw_norm = nn.BatchNorm2d(num_subspaces, eps=eps, momentum=momentum)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, C, H, W)", channels_first=True)
        training = self.training
        stats = (self.dw_norm.running_mean, self.dw_norm.running_var, self.pw_norm.running_mean,
                 self.pw_norm.running_var)
        used = [autocast_like(t, x) for t in stats]  # under autocast: copies in the activations' dtype
        dw_mean, dw_var, pw_mean, pw_var = used
        out = subspace_attention(
            x, *(autocast_like(t, x) for t in (self.dw.weight.view(-1), self.dw.bias, self.dw_norm.weight,
                                               self.dw_norm.bias)), dw_mean, dw_var,
            *(autocast_like(t, x) for t in (self.pw.weight.view(self.num_subspaces, -1), self.pw.bias,
                                            self.pw_norm.weight, self.pw_norm.bias)), pw_mean, pw_var,
            training=training, momentum=self.dw_norm.momentum, eps=self.dw_norm.eps, impl=self.impl)
        if training:  # BatchNorm's bookkeeping; the op updated the running statistics it was given in place
            for norm in (self.dw_norm, self.pw_norm):
                norm.num_batches_tracked.add_(1)
            for original, copy in zip(stats, used):
                if copy is not original:
                    original.copy_(copy)
        return out
