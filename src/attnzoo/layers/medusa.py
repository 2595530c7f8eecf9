"""MEDUSA (arXiv 2110.06063, paper 18): one attention body for the whole network and one light head per attended
feature map. As the official COVID-Net CXR-3 code (``lindawangg/COVID-Net`` commit b56ba63, ``model/build_model.py``
``build_UNet2D_4L`` and ``model/resnet1.py`` ``set_attention`` / ``apply_attention``): the body is a 4-level U-Net
on the (1-channel) semantic input ending in a 3x3 convolution to one channel and a sigmoid; each head resizes that
map to its feature map's grid, a linear 7x7 convolution (He-normal weights, zero bias, "same" padding) turns it
into one attention value per channel and pixel, and ``F ← F + F ⊙ A``. In ResNet-50 the official code places
heads after the stem's max pooling and after stages 2, 3 and 4 (``conv2_x`` .. ``conv4_x``); the body runs once
per image (``s = body(image)``, then ``x = head(x, s)`` at each point).

Initialisation as Keras's defaults in the official code: the body's convolutions Glorot-uniform with zero
biases, the heads He-normal (truncated at two standard deviations) with zero biases."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.checks import autocast_like, check_layer_input
from attnzoo.layers.options import ShowsOptions
from attnzoo.ops.feature_maps import LAYOUT, check_odd_int
from attnzoo.ops.medusa.functional import medusa_attention
from attnzoo.validation import check_int


def _double_conv(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(),
                         nn.Conv2d(cout, cout, k, padding=k // 2), nn.ReLU())


class MedusaBody(ShowsOptions, nn.Module):
    """The shared attention body: ``(B, in_channels, H, W)`` -> saliency ``(B, 1, H, W)`` in (0, 1); ``H`` and
    ``W`` must be multiples of 16 (four 2x2 poolings, each undone by an upsampling and a skip concatenation).

    Encoder: per level two ``kernel_size`` convolutions with ReLU (``encoder_widths``, official 32, 64, 64, 128)
    then 2x2 max pooling; bottleneck: one convolution (``bottleneck``, official 256); decoder, per level:
    nearest 2x upsampling, two convolutions (``decoder_widths``, official 256, 256, 128, 64), concatenation with
    the encoder level's output, one convolution; a final convolution to one channel and a sigmoid.

    >>> import torch
    >>> body = MedusaBody(encoder_widths=(4, 4, 8, 8), bottleneck=8, decoder_widths=(8, 8, 4, 4))
    >>> body(torch.randn(2, 1, 32, 48)).shape
    torch.Size([2, 1, 32, 48])
    """

    def __init__(self, in_channels: int = 1, encoder_widths: Sequence[int] = (32, 64, 64, 128), bottleneck: int = 256,
                 decoder_widths: Sequence[int] = (256, 256, 128, 64), kernel_size: int = 3) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("bottleneck", bottleneck)
        for name, widths in (("encoder_widths", encoder_widths), ("decoder_widths", decoder_widths)):
            if not isinstance(widths, Sequence) or len(widths) != 4 or not all(
                    isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
                raise ValueError(f"{name}={widths!r}: expected a sequence of 4 ints >= 1 (one per U-Net level)")
        check_odd_int("kernel_size", kernel_size)
        self.in_channels, k = in_channels, kernel_size
        widths_in = [in_channels, *encoder_widths[:-1]]
        self.encoders = nn.ModuleList(_double_conv(a, b, k) for a, b in zip(widths_in, encoder_widths))
        self.bottleneck = nn.Sequential(nn.Conv2d(encoder_widths[-1], bottleneck, k, padding=k // 2), nn.ReLU())
        below = [bottleneck, *decoder_widths[:-1]]
        self.decoders = nn.ModuleList(_double_conv(a, b, k) for a, b in zip(below, decoder_widths))
        skips = list(reversed(encoder_widths))
        self.merges = nn.ModuleList(nn.Sequential(nn.Conv2d(s + d, d, k, padding=k // 2), nn.ReLU())
                                    for s, d in zip(skips, decoder_widths))
        self.out = nn.Conv2d(decoder_widths[-1], 1, k, padding=k // 2)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, image, rank=4, dim=self.in_channels, layout=LAYOUT, channels_first=True, name="image")
        h, w = image.shape[2:]
        if h % 16 or w % 16:
            raise ValueError(f"image has grid {h}x{w}; expected multiples of 16 (the U-Net pools 4 times)")
        skips, x = [], image
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for decoder, merge, skip in zip(self.decoders, self.merges, reversed(skips)):
            x = decoder(F.interpolate(x, scale_factor=2, mode="nearest"))
            x = merge(torch.cat((skip, x), dim=1))
        return torch.sigmoid(self.out(x))


class MedusaHead(ShowsOptions, nn.Module):
    """One attention head: ``x`` ``(B, dim, H, W)`` and the body's ``saliency`` ``(B, saliency_channels, Hs,
    Ws)`` (any grid) -> ``x + x ⊙ (W ∗ resize(saliency) + b)`` ``(B, dim, H, W)``; ``W`` a ``kernel_size``
    convolution (official 7, odd) to ``dim`` channels, no activation. ``impl`` as
    :func:`attnzoo.ops.medusa.medusa_attention`.

    >>> import torch
    >>> head = MedusaHead(16)
    >>> head(torch.randn(2, 16, 7, 9), torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 16, 7, 9])
    """

    def __init__(self, dim: int, kernel_size: int = 7, saliency_channels: int = 1, impl: str = "auto") -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        check_odd_int("kernel_size", kernel_size)
        check_int("saliency_channels", saliency_channels)
        self.impl = impl
        self.conv = nn.Conv2d(saliency_channels, dim, kernel_size, padding=kernel_size // 2)
        std = math.sqrt(2.0 / (saliency_channels * kernel_size ** 2))
        nn.init.trunc_normal_(self.conv.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, x, rank=4, dim=self.dim, layout=LAYOUT, channels_first=True)
        return medusa_attention(x, saliency, autocast_like(self.conv.weight, x), autocast_like(self.conv.bias, x),
                                impl=self.impl)
