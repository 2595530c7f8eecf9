"""ECA (arXiv 1910.03151) beyond the registry contract: the paper's adaptive kernel table, the parameter count,
the band-matrix form checked tap by tap, the k = 1 limit, the official module (``BangguWu/ECANet``
``models/eca_module.py`` at 4329104c, transcribed) and timm 1.0.31's ``EcaModule`` / ``CecaModule`` (loaded from
its source), both with copied weights."""

from __future__ import annotations

import pytest
import torch
from timm_source import load_timm
from torch import nn

import attnzoo
from attnzoo.layers import EfficientChannelAttention
from attnzoo.ops import eca_kernel_size, efficient_channel_attention
from attnzoo.ops.eca.reference import channel_conv_matrix


class OfficialECA(nn.Module):
    """``eca_layer`` of BangguWu/ECANet ``models/eca_module.py`` (commit 4329104caed82ae39825d7463dfee6242cccd432),
    line for line."""

    def __init__(self, channel: int, k_size: int = 3) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        y = self.sigmoid(y)
        return x * y.expand_as(x)


def test_adaptive_kernel_table_of_the_paper() -> None:
    """ψ(C) = |log2(C)/2 + 1/2|_odd: the catalog's table, and small channel counts (1 tap below 8 channels)."""
    table = {64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7, 1: 1, 4: 1, 8: 3, 16: 3, 32: 3, 96: 3}
    assert {c: eca_kernel_size(c) for c in table} == table
    assert eca_kernel_size(64, gamma=1, beta=0) == 7  # t = 6, even -> 7
    assert [EfficientChannelAttention(c).kernel_size for c in (64, 256, 2048)] == [3, 5, 7]


@pytest.mark.parametrize(("dim", "kernel_size", "k"), [(64, None, 3), (256, None, 5), (10, 9, 9), (3, 1, 1)])
def test_the_module_has_k_parameters(dim: int, kernel_size: int | None, k: int) -> None:
    layer = EfficientChannelAttention(dim, kernel_size)
    assert sum(p.numel() for p in layer.parameters()) == k


def test_band_matrix_is_the_convolution_tap_by_tap() -> None:
    """Row i of the reference's matrix holds w_t at column i + t - r, nothing elsewhere (zero padding), and the
    circulant wraps the same taps around."""
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    c, r = 6, 2
    band, circulant = channel_conv_matrix(w, c), channel_conv_matrix(w, c, circular=True)
    for i in range(c):
        for j in range(c):
            t = j - i + r
            assert band[i, j] == (w[t] if 0 <= t < 5 else 0)
            assert circulant[i, j] == sum(w[t] for t in range(5) if (i + t - r) % c == j)
    # a kernel longer than the channel axis: taps reaching past both ends are cut off
    assert torch.equal(channel_conv_matrix(w, 1), w[2:3].view(1, 1))


def test_one_unit_tap_is_the_sigmoid_of_the_channel_means() -> None:
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    expected = x * torch.sigmoid(x.mean((2, 3), keepdim=True))
    for impl in ("reference", "conv1d"):
        torch.testing.assert_close(efficient_channel_attention(x, torch.ones(1, dtype=torch.float64), impl=impl),
                                   expected)


def test_gate_is_per_channel_and_in_the_unit_interval() -> None:
    x = torch.randn(3, 16, 5, 7, dtype=torch.float64)
    out = efficient_channel_attention(x, torch.randn(3, dtype=torch.float64))
    gate = out / x
    torch.testing.assert_close(gate, gate[:, :, :1, :1].expand_as(gate))
    assert ((gate > 0) & (gate < 1)).all()


@pytest.mark.parametrize(("channels", "k"), [(64, 3), (37, 5), (4, 9)])
def test_official_module_with_copied_weights(channels: int, k: int) -> None:
    official = OfficialECA(channels, k).double()
    ours = EfficientChannelAttention(channels, k).double()
    ours.load_state_dict(official.state_dict())
    x = torch.randn(2, channels, 9, 5, dtype=torch.float64, requires_grad=True)
    expected, out = official(x), ours(x)
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, (x, ours.conv.weight), g),
                               torch.autograd.grad(expected, (x, official.conv.weight), g))


def _timm_eca() -> dict:
    def create_act_layer(name: object, **_: object) -> nn.Module:
        assert name == "sigmoid", name
        return nn.Sigmoid()

    return load_timm("layers/eca.py", ["EcaModule", "CecaModule"],
                     {"create_act_layer": create_act_layer, "make_divisible": None, "math": __import__("math")})


@pytest.mark.parametrize(("channels", "kernel_size"), [(64, None), (256, None), (2048, None), (12, 5), (5, 3)])
@pytest.mark.parametrize("circular", [False, True])
def test_timm_eca_and_ceca_modules_with_copied_weights(channels: int, kernel_size: int | None,
                                                       circular: bool) -> None:
    """timm's ``EcaModule`` (zero padding) and ``CecaModule`` (circular padding); built from the channel count
    (timm's ψ, equal to ours from 8 channels on, where it is >= 3) or from an explicit kernel size."""
    timm = _timm_eca()["CecaModule" if circular else "EcaModule"]
    peer = (timm(channels=channels) if kernel_size is None else timm(kernel_size=kernel_size)).double()
    ours = attnzoo.create("eca", dim=channels, kernel_size=kernel_size, circular=circular).double()
    assert ours.kernel_size == peer.conv.kernel_size[0]
    ours.conv.weight.data.copy_(peer.conv.weight.data)
    x = torch.randn(2, channels, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(ours(x), peer(x))


def test_timm_clamps_small_channel_counts_to_three_taps_and_we_follow_the_paper() -> None:
    """The one difference: timm takes at least 3 taps; ψ(4) = 1 as the paper's formula gives."""
    assert _timm_eca()["EcaModule"](channels=4).conv.kernel_size == (3,)
    assert EfficientChannelAttention(4).kernel_size == 1


@pytest.mark.parametrize("impl", ["conv1d"])
@pytest.mark.parametrize("circular", [False, True])
def test_a_nan_pixel_poisons_exactly_the_channels_its_mean_reaches(impl: str, circular: bool) -> None:
    """A NaN in channel c makes its mean NaN, hence the gates of channels c - r .. c + r (modulo C when circular),
    hence those whole channels; the other channels equal the clean output. (The reference's dense C x C product
    multiplies the NaN mean by the band's zeros too, so there it reaches every channel of its sample.)"""
    x = torch.randn(2, 10, 4, 5, dtype=torch.float64)
    w = torch.randn(5, dtype=torch.float64)
    clean = efficient_channel_attention(x, w, circular, impl=impl)
    for c in (0, 4, 9):
        poisoned = x.clone()
        poisoned[1, c, 2, 3] = float("nan")
        out = efficient_channel_attention(poisoned, w, circular, impl=impl)
        reached = {(c + t) % 10 for t in range(-2, 3)} if circular else {c + t for t in range(-2, 3) if 0 <= c + t < 10}
        nan_channels = {i for i in range(10) if out[1, i].isnan().all()}
        assert nan_channels == reached and not out[0].isnan().any()
        keep = [i for i in range(10) if i not in reached]
        torch.testing.assert_close(out[1, keep], clean[1, keep], atol=0, rtol=0)
        assert torch.equal(out[0], clean[0])
