"""LKA (VAN, arXiv 2202.09741) beyond the registry contract: the official ``AttentionModule`` and
``SpatialAttention`` of ``Visual-Attention-Network/VAN-Classification`` ``models/van.py`` (commit
72e17fdbc8695b8f0901a64d4109a111010b8950; timm 1.0.31 has no VAN model), transcribed, with copied weights; the
receptive field (exactly the 23 x 23 window, which holds the decomposed 21 x 21 kernel); the interior equality
with one depthwise convolution of the composed kernel; the multiplication into the input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnzoo
from attnzoo.layers import LargeKernelAttention, VANSpatialAttention
from attnzoo.ops import large_kernel_attention


class OfficialAttentionModule(nn.Module):
    """``AttentionModule`` of the official ``models/van.py``, line for line."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, stride=1, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.clone()
        attn = self.conv0(x)
        attn = self.conv_spatial(attn)
        attn = self.conv1(attn)
        return u * attn


class OfficialSpatialAttention(nn.Module):
    """``SpatialAttention`` of the official ``models/van.py``, line for line."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(d_model, d_model, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = OfficialAttentionModule(d_model)
        self.proj_2 = nn.Conv2d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shorcut = x.clone()
        x = self.proj_1(x)
        x = self.activation(x)
        x = self.spatial_gating_unit(x)
        x = self.proj_2(x)
        x = x + shorcut
        return x


def _compare(ours: nn.Module, official: nn.Module, x: torch.Tensor) -> None:
    ours.load_state_dict(official.state_dict())
    x = x.requires_grad_()
    out, expected = ours(x), official(x)
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, *ours.parameters()), g)
    torch.testing.assert_close(grads, torch.autograd.grad(expected, (x, *official.parameters()), g))


@pytest.mark.parametrize("impl", ["conv2d", "reference"])
@pytest.mark.parametrize(("dim", "grid"), [(32, (14, 14)), (7, (9, 30)), (3, (1, 2))])
def test_official_attention_module_with_copied_weights(impl: str, dim: int, grid: tuple[int, int]) -> None:
    torch.manual_seed(0)
    _compare(LargeKernelAttention(dim, impl=impl).double(), OfficialAttentionModule(dim).double(),
             torch.randn(2, dim, *grid, dtype=torch.float64))


def test_official_spatial_attention_with_copied_weights() -> None:
    torch.manual_seed(0)
    _compare(VANSpatialAttention(16).double(), OfficialSpatialAttention(16).double(),
             torch.randn(2, 16, 11, 10, dtype=torch.float64))


def test_the_registered_defaults_are_vans() -> None:
    layer = attnzoo.create("lka", dim=8)
    assert (layer.conv0.kernel_size, layer.conv_spatial.kernel_size, layer.conv_spatial.dilation) == \
        ((5, 5), (7, 7), (3, 3))
    assert layer.receptive_field == 23
    assert sum(p.numel() for p in layer.parameters()) == 8 * (25 + 1) + 8 * (49 + 1) + 8 * 8 + 8


@pytest.mark.parametrize("impl", ["conv2d", "reference"])
def test_receptive_field_is_exactly_the_23_by_23_window(impl: str) -> None:
    """The gradient of one interior output pixel towards the input is non-zero exactly on the 23 x 23 window
    around it (5 + 6·3 pixels: every offset u + 3v, |u| <= 2, |v| <= 3, is reached), which contains the 21 x 21
    kernel VAN decomposes; with a single channel the pointwise step mixes nothing in."""
    torch.manual_seed(0)
    layer = LargeKernelAttention(1, impl=impl).double()
    with torch.no_grad():
        for conv in (layer.conv0, layer.conv_spatial):
            conv.weight.copy_(torch.rand_like(conv.weight) + 0.1)  # positive taps: no accidental cancellation
    x = torch.rand(1, 1, 41, 43, dtype=torch.float64, requires_grad=True) + 0.5
    i, j = 20, 22
    (grad,) = torch.autograd.grad(layer(x)[0, 0, i, j], x)
    support = grad[0, 0] != 0
    expected = torch.zeros_like(support)
    expected[i - 11:i + 12, j - 11:j + 12] = True
    assert torch.equal(support, expected)


def test_interior_equals_one_depthwise_convolution_of_the_composed_kernel() -> None:
    """DW7d3(DW5(x)) is one depthwise 23 x 23 convolution (the 5x5 kernel convolved with the dilated 7x7 one) at
    pixels at least 9 from the border, where the intermediate zero padding is not read."""
    c = 3
    x = torch.randn(2, c, 30, 31, dtype=torch.float64)
    w5, w7 = torch.randn(c, 1, 5, 5, dtype=torch.float64), torch.randn(c, 1, 7, 7, dtype=torch.float64)
    identity = torch.eye(c, dtype=torch.float64)[:, :, None, None]
    lka = large_kernel_attention(x, w5, w7, identity)
    dilated7 = torch.zeros(c, 1, 19, 19, dtype=torch.float64)
    dilated7[:, :, ::3, ::3] = w7
    composed = F.conv2d(F.pad(dilated7, (2, 2, 2, 2)).transpose(0, 1), w5.flip(-1, -2), groups=c,
                        padding=2).transpose(0, 1)  # (C, 1, 23, 23): the full convolution of the two kernels
    direct = x * F.conv2d(x, composed, padding=11, groups=c)
    torch.testing.assert_close(lka[..., 9:-9, 9:-9], direct[..., 9:-9, 9:-9])


def test_the_attention_multiplies_the_input() -> None:
    layer = LargeKernelAttention(4).double()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    assert torch.equal(layer(torch.zeros_like(x)), torch.zeros_like(x))
    attn = layer.conv1(layer.conv_spatial(layer.conv0(x)))
    torch.testing.assert_close(layer(x), x * attn)


@pytest.mark.parametrize("impl", ["conv2d", "reference"])
def test_a_nan_pixel_reaches_exactly_its_23_by_23_window(impl: str) -> None:
    """Through the depthwise convolutions a NaN reaches the receptive field around it (in every channel, through
    the pointwise step), and nothing else; the rest of the output equals the clean one."""
    layer = LargeKernelAttention(3, impl=impl).double()
    x = torch.randn(1, 3, 40, 41, dtype=torch.float64)
    clean = layer(x)
    x[0, 1, 20, 15] = float("nan")
    with torch.no_grad():
        out = layer(x)
    expected = torch.zeros(40, 41, dtype=torch.bool)
    expected[20 - 11:20 + 12, 15 - 11:15 + 12] = True
    assert torch.equal(out.isnan(), expected.expand(1, 3, 40, 41))
    torch.testing.assert_close(out[:, :, ~expected], clean.detach()[:, :, ~expected], atol=0, rtol=0)
