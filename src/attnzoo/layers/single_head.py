"""SHViT's single-head self-attention layer (arXiv 2401.16456), following the official ``SHSA``
(ysj9909/SHViT ``model/shvit.py``; timm's ``timm/models/shvit.py`` is the same module)."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.layers.checks import check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.single_head.functional import single_head_attention
from attnzoo.validation import check_int, check_real

PAPER_PARTIAL_RATIO = 1 / 4.67
"""SHViT's fraction of attended channels: the official SHViT-S4 config attends 48 of 224, 72 of 336 and 96 of 448
channels (C / 4.67 in every stage; S1-S3 use 1/4 to 1/4.67)."""


class _Conv2dNorm(nn.Sequential):
    """The official ``Conv2d_BN`` at kernel 1: a bias-free 1x1 ``Conv2d`` then ``BatchNorm2d`` (weight
    ``bn_weight_init``, bias 0); the submodule names ``c`` / ``bn`` are the official ones, so state dicts load."""

    def __init__(self, in_channels: int, out_channels: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)


class SingleHeadAttention(ShowsOptions, nn.Module):
    """SHViT's single-head self-attention on channels-last input ``(B, H, W, C)`` -> ``(B, H, W, C)``::

        x1, x2 = x[..., :C_p], x[..., C_p:]              C_p = round(dim · partial_ratio)
        q, k, v = BN(Conv1x1(GroupNorm_1(x1)))           widths qk_dim, qk_dim, C_p
        x1 = softmax(q kᵀ / √qk_dim) v                   one head over all N = H · W tokens
        out = BN_0(Conv1x1(ReLU(cat(x1, x2))))           the untouched x2 is mixed back in here

    Global mixing happens on ``C_p`` channels only (default :data:`PAPER_PARTIAL_RATIO`, 1/4.67, so ``dim=224``
    attends 48); ``qk_dim`` is 16 in every SHViT config. Init as the official code: BatchNorm weights 1, biases 0,
    except the output BatchNorm's weight, ``proj_norm_init`` (official ``bn_weight_init=0``, the default: the layer
    outputs zeros until trained, a residual branch that starts as the identity; the registry builds it with 1 so
    that a layer made by ``attnzoo.create`` has a non-zero output to compare and benchmark). BatchNorm normalises over the batch in training mode, so an
    example's output depends on the others' there (eval mode: running statistics, per example). Computes
    channels first internally, as the official module. ``partial_ratio`` in ``(0, 1]``; ``1`` attends every
    channel (one-head attention with ``qk_dim`` query/key channels). Time O(N² · (2 qk_dim + C_p) + N · C²).
    """

    def __init__(self, dim: int, partial_ratio: float = PAPER_PARTIAL_RATIO, qk_dim: int = 16,
                 proj_norm_init: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        ratio = check_real("partial_ratio", partial_ratio)
        if ratio > 1:
            raise ValueError(f"partial_ratio={partial_ratio!r}: expected a fraction of the channels in (0, 1]")
        self.partial_dim = round(dim * ratio)
        if self.partial_dim < 1:
            raise ValueError(f"partial_ratio={partial_ratio!r}: attends round(dim · partial_ratio) = "
                             f"round({dim} · {partial_ratio!r}) = 0 channels of dim={dim}; expected >= 1")
        self.qk_dim, self.impl = check_int("qk_dim", qk_dim), impl
        self.pre_norm = nn.GroupNorm(1, self.partial_dim)
        self.qkv = _Conv2dNorm(self.partial_dim, 2 * qk_dim + self.partial_dim)
        init = check_real("proj_norm_init", proj_norm_init, inclusive=True)
        self.proj = nn.Sequential(nn.ReLU(), _Conv2dNorm(dim, dim, bn_weight_init=init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        batch, height, width, _ = x.shape
        x1, x2 = torch.split(x.permute(0, 3, 1, 2), [self.partial_dim, self.dim - self.partial_dim], dim=1)
        # contiguous: GroupNorm's CPU backward on this channels-last-strided slice segfaults in torch 2.13 when the
        # input needs no gradient (only the norm's weight and bias do)
        q, k, v = self.qkv(self.pre_norm(x1.contiguous())).split([self.qk_dim, self.qk_dim, self.partial_dim],
                                                                  dim=1)
        q, k, v = (t.flatten(2).transpose(1, 2).unsqueeze(1) for t in (q, k, v))  # (B, 1, N, channels)
        x1 = single_head_attention(q, k, v, impl=self.impl)
        x1 = x1.squeeze(1).transpose(1, 2).reshape(batch, self.partial_dim, height, width)
        return self.proj(torch.cat([x1, x2], dim=1)).permute(0, 2, 3, 1)
