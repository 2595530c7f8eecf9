"""DaViT channel group attention layer (arXiv 2204.03645), timm's ``ChannelAttention`` (``timm/models/davit.py``,
adapted from the official dingmyu/davit), optionally in DaViT's dual pair with spatial window attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnzoo.layers.checks import check_heads, check_layer_input
from attnzoo.layers.heads import merge_heads, split_heads
from attnzoo.layers.options import ShowsOptions
from attnzoo.layers.window import WindowAttention2D
from attnzoo.ops.channel_group.functional import channel_group_attention
from attnzoo.validation import check_flag, check_scale


class ChannelGroupAttention(ShowsOptions, nn.Module):
    """Channel group attention on channels-last input ``(B, H, W, C)`` -> ``(B, H, W, C)``.

    As timm's ``ChannelAttention``: ``qkv = Linear(C, 3C)``, ``num_heads`` groups of ``C_g = C / num_heads``
    channels, per group ``A = softmax((k · C_g^{-1/2})ᵀ v)`` (``C_g x C_g``, summed over all ``H·W``
    positions) applied to ``q``, output ``Linear(C, C)``. The official ``k, v, q`` are the paper's ``Q, K, V``
    (:func:`attnzoo.ops.channel_group_attention` takes the paper's roles), so timm / official weights load
    unchanged. ``scale`` overrides ``C_g^{-1/2}``. Global over the image, linear in ``H·W``.

    ``window_size`` (``None``: channel attention alone) makes the layer DaViT's dual attention in one mixer:
    the spatial window attention of DaViT's ``SpatialBlock`` (:class:`attnzoo.layers.WindowAttention2D`, no
    shift, no position bias, zero-padded to a multiple of the window, the same ``num_heads`` and ``qkv_bias``),
    then channel attention, stacked as two residual sub-layers with a LayerNorm before the second::

        s = window(x),   out = s + channel(LayerNorm(x + s))

    so that a pre-norm block ``x + out`` is ``x`` through both sub-layers. DaViT itself puts an MLP and a
    depthwise-convolution position encoding (``ConvPosEnc``) around each of the two; those belong to the model,
    not to this mixer (the models of :mod:`attnzoo.models` bring their own MLP and positions).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int | Sequence[int] | None = None,
                 qkv_bias: bool = True, scale: float | None = None, impl: str = "auto") -> None:
        super().__init__()
        check_heads(dim, num_heads)
        check_flag("qkv_bias", qkv_bias)
        self.dim, self.num_heads = dim, num_heads
        self.scale, self.impl = check_scale("scale", scale, None), impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.spatial: WindowAttention2D | None = None
        self.norm: nn.LayerNorm | None = None
        if window_size is not None:
            self.spatial = WindowAttention2D(dim, num_heads, window_size, rel_pos_bias=False, qkv_bias=qkv_bias)
            self.norm = nn.LayerNorm(dim)

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel attention sub-layer alone, ``(B, H, W, C) -> (B, H, W, C)``."""
        q, k, v = split_heads(self.qkv(x.flatten(1, 2)), 3 * self.num_heads).chunk(3, dim=1)  # (B, G, N, C_g)
        out = channel_group_attention(k, v, q, scale=self.scale, impl=self.impl)  # official k, v, q = paper Q, K, V
        return self.proj(merge_heads(out)).unflatten(1, x.shape[1:3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout="(B, H, W, C)")
        if self.spatial is None:
            return self.channel_attention(x)
        spatial = self.spatial(x)
        return spatial + self.channel_attention(self.norm(x + spatial))
