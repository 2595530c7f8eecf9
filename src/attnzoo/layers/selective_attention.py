"""SDANet's selective dense attention (arXiv 2108.07020, paper 47) as a layer: pyramid levels in, one refined
level out, as the decompiled ``selective_attention`` of ``bywang2018/security-dataset`` (commit 3ade35c,
``mmdet/models/necks/__pycache__/attfpn.cpython-37.pyc``; the source file itself is not released, see
:mod:`attnzoo.ops.selective_attention.functional`).

Gathering (official): the levels before ``target`` are max-pooled (``adaptive_max_pool2d``) to the target's grid,
the others (the target included) resized by nearest interpolation. Squeeze (official ``channel_attention.fc``):
``z = ReLU(BN(Conv1x1_{C -> C/2}(GAP(Σ_i F_i))))`` with no convolution bias. Refinement (official
``ContextBlock(C, 1/16)`` of mmcv, GCNet): attention pooling ``softmax_HW(Conv1x1_{C -> 1}(x))``, the context
vector ``Σ_p w_p x_p``, ``channel_add``: ``Conv1x1 -> LayerNorm -> ReLU -> Conv1x1`` (``C -> C/16 -> C``, the last
one zero-initialised, so the block starts as the identity), added to every pixel. With ``refine=False`` the
official module returns the spatial branch alone (``bsf = feats_S``); this layer does the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import LAYOUT, check_odd_int
from attnzoo.ops.selective_attention.functional import selective_dense_attention
from attnzoo.validation import check_flag, check_int


class ContextBlock(ShowsOptions, nn.Module):
    """GCNet's global context block (Cao et al. 2019, mmcv's ``ContextBlock`` with ``pooling_type="att"``,
    ``fusion_types=("channel_add",)``): ``x + T(Σ_p softmax_p(W_k x)_p · x_p)`` on ``(B, dim, H, W)``, ``T`` =
    1x1 ``dim -> planes``, LayerNorm, ReLU, 1x1 ``planes -> dim`` (zero-initialised: the identity at start);
    ``planes = int(dim * ratio)``.

    >>> import torch
    >>> block = ContextBlock(32)
    >>> x = torch.randn(2, 32, 5, 6)
    >>> bool(torch.equal(block(x), x))
    True
    """

    def __init__(self, dim: int, ratio: float = 1 / 16) -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        planes = int(dim * ratio)
        if planes < 1:
            raise ValueError(f"dim={dim} with ratio={ratio!r} leaves int(dim * ratio) = 0 hidden channels; "
                             "expected dim * ratio >= 1")
        self.conv_mask = nn.Conv2d(dim, 1, 1)
        self.channel_add_conv = nn.Sequential(nn.Conv2d(dim, planes, 1), nn.LayerNorm([planes, 1, 1]), nn.ReLU(),
                                              nn.Conv2d(planes, dim, 1))
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add_conv[-1].weight)
        nn.init.zeros_(self.channel_add_conv[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True)
        b, c, h, w = x.shape
        weights = torch.softmax(self.conv_mask(x).reshape(b, 1, h * w), dim=-1)  # (B, 1, N)
        context = (x.reshape(b, c, h * w) @ weights.transpose(1, 2)).reshape(b, c, 1, 1)
        return x + self.channel_add_conv(context)


class SelectiveDenseAttention(ShowsOptions, nn.Module):
    """SDANet's selective attention: ``forward(levels)`` with ``levels`` a sequence of ``num_levels`` maps
    ``(B, dim, H_i, W_i)`` -> ``(B, dim, H_t, W_t)`` on the grid of ``levels[target]`` (official: two levels,
    target 0, ``dim=256``, spatial ``kernel_size=7``, squeeze to ``dim // 2``). ``impl`` as
    :func:`attnzoo.ops.selective_attention.selective_dense_attention`.

    >>> import torch
    >>> layer = SelectiveDenseAttention(32)
    >>> layer([torch.randn(2, 32, 10, 12), torch.randn(2, 32, 5, 6)]).shape
    torch.Size([2, 32, 10, 12])
    """

    def __init__(self, dim: int = 256, num_levels: int = 2, target: int = 0, kernel_size: int = 7,
                 refine: bool = True, impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim, minimum=2)
        self.num_levels = check_int("num_levels", num_levels)
        check_int("target", target, minimum=0)
        if target >= num_levels:
            raise ValueError(f"target={target}: expected a level index below num_levels={num_levels}")
        check_odd_int("kernel_size", kernel_size)
        self.target, self.refine_output, self.impl = target, check_flag("refine", refine), impl
        hidden = dim // 2
        self.squeeze = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden))
        self.excite = nn.ModuleList(nn.Conv2d(hidden, dim, 1) for _ in range(num_levels))
        self.spatial = nn.ModuleList(nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
                                     for _ in range(num_levels))
        self.refine = ContextBlock(dim) if refine else None

    def gather(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """The levels on the target's grid, ``(B, num_levels, dim, H_t, W_t)`` (official gathering; the op takes them
        concatenated along the channels, as the official ``torch.cat(feats, dim=1)``)."""
        size = tuple(levels[self.target].shape[2:])
        return torch.stack([F.adaptive_max_pool2d(f, size) if i < self.target else F.interpolate(f, size=size)
                            for i, f in enumerate(levels)], dim=1)

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(levels, torch.Tensor) or not isinstance(levels, Sequence) or len(levels) != self.num_levels:
            raise ValueError(f"levels: expected a sequence of num_levels={self.num_levels} tensors (B, C={self.dim}, "
                             f"H_i, W_i), got {type(levels).__name__}"
                             + (f" of length {len(levels)}" if isinstance(levels, Sequence) else ""))
        for i, f in enumerate(levels):
            check_layer_input(self, f, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True, name=f"levels[{i}]")
            if f.shape[0] != levels[0].shape[0]:
                raise ValueError(f"levels[{i}] has batch {f.shape[0]}; expected levels[0]'s {levels[0].shape[0]}")
        stacked = self.gather(levels).flatten(1, 2)
        conv, norm = self.squeeze[0], self.squeeze[1]
        training = norm.training or norm.running_mean is None
        if training and norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(1)
        excite_weight = torch.stack([c.weight.flatten(1) for c in self.excite])
        excite_bias = torch.stack([c.bias for c in self.excite])
        spatial_weight = torch.cat([c.weight for c in self.spatial])
        weights = [autocast_like(t, stacked) for t in (conv.weight.flatten(1), norm.weight, norm.bias)]
        fused = selective_dense_attention(
            stacked, *weights, norm.running_mean, norm.running_var, autocast_like(excite_weight, stacked),
            autocast_like(spatial_weight, stacked), autocast_like(excite_bias, stacked), training=training,
            momentum=norm.momentum, eps=norm.eps, impl=self.impl,
            branches="both" if self.refine is not None else "spatial")
        return fused if self.refine is None else self.refine(fused)
