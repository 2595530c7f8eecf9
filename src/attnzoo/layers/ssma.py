"""The SSMA fusion block (arXiv 1808.03833, paper 58) as a layer: two modality streams in, one fused stream out,
as the official ``models/SSMA.py`` (``DeepSceneSeg/SSMA``, commit 7066905) fuses the two experts' eASPP outputs:
``BN(W_f ∗ (X ⊙ σ(W_e ∗ ReLU(W_r ∗ X))))`` with ``X = cat(x, y)``. Official initialisation: He (truncated
normal, std √(2 / fan_in)) convolution weights, gate biases 0.01, no bias on the 1x1 fusion (batch norm follows,
eps 1e-5, TF decay 0.99 = momentum 0.01)."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import LAYOUT, check_odd_int
from attnzoo.ops.ssma.functional import ssma_fusion
from attnzoo.validation import check_int, check_optional_int


def _he_init(conv: nn.Conv2d) -> None:
    std = math.sqrt(2.0 / (conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]))
    nn.init.trunc_normal_(conv.weight, std=std, a=-2 * std, b=2 * std)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, 0.01)


class SSMAFusion(ShowsOptions, nn.Module):
    """SSMA fusion: ``forward(x, y)`` with ``x`` ``(B, dim, H, W)`` (one modality) and ``y`` ``(B, dim_y, H, W)``
    (the other, ``dim_y`` defaults to ``dim``) -> ``(B, out_dim, H, W)`` (``out_dim`` defaults to ``dim``, as the
    official 256 + 256 -> 256). The gate's bottleneck has ``(dim + dim_y) // reduction`` channels (official
    ``reduction=16``: 512 -> 32), its two convolutions ``kernel_size`` (official 3). ``impl`` as
    :func:`attnzoo.ops.ssma.ssma_fusion`.

    The two modalities are two arguments, not one concatenated tensor: a caller has them apart, and the gate needs
    to know where one ends (``dim``). A model that already holds ``cat(x, y)`` passes ``*z.split((dim, dim_y), 1)``.

    >>> import torch
    >>> fusion = SSMAFusion(16)
    >>> fusion(torch.randn(2, 16, 5, 7), torch.randn(2, 16, 5, 7)).shape
    torch.Size([2, 16, 5, 7])
    """

    def __init__(self, dim: int, dim_y: int | None = None, out_dim: int | None = None, reduction: int = 16,
                 kernel_size: int = 3, impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        self.dim_y = check_optional_int("dim_y", dim_y) or dim
        out_dim = check_optional_int("out_dim", out_dim) or dim
        check_int("reduction", reduction)
        check_odd_int("kernel_size", kernel_size)
        channels = self.dim + self.dim_y
        if channels < reduction:
            raise ValueError(f"dim + dim_y = {channels} with reduction={reduction} leaves no gate channels "
                             f"({channels} // {reduction} = 0); expected dim + dim_y >= reduction")
        self.impl = impl
        self.reduce = nn.Conv2d(channels, channels // reduction, kernel_size, padding=kernel_size // 2)
        self.expand = nn.Conv2d(channels // reduction, channels, kernel_size, padding=kernel_size // 2)
        self.fuse = nn.Conv2d(channels, out_dim, 1, bias=False)
        self.norm = nn.BatchNorm2d(out_dim, eps=1e-5, momentum=0.01)
        for conv in (self.reduce, self.expand, self.fuse):
            _he_init(conv)

    def gate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The gate ``g = σ(W_e ∗ ReLU(W_r ∗ cat(x, y)))`` ``(B, dim + dim_y, H, W)`` (for inspection)."""
        both = torch.cat((x, y), dim=1)
        return torch.sigmoid(self.expand(torch.relu(self.reduce(both))))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True, name="x")
        check_layer_input(self, y, rank=4, dim=self.dim_y, layout=LAYOUT, channels_first=True, name="y")
        norm = self.norm
        training = norm.training or norm.running_mean is None
        if training and norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(1)
        weights = [autocast_like(t, x) for t in (self.reduce.weight, self.expand.weight, self.fuse.weight,
                                                  norm.weight, norm.bias)]
        return ssma_fusion(x, y, *weights, norm.running_mean, norm.running_var, autocast_like(self.reduce.bias, x),
                           autocast_like(self.expand.bias, x), training=training, momentum=norm.momentum,
                           eps=norm.eps, impl=self.impl)
