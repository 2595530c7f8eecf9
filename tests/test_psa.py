"""Polarized self-attention (arXiv 2107.00782) beyond the registry contract: the official ``PSA_p`` and ``PSA_s``
of ``DeLightCMU/PSA`` ``semantic-segmentation/network/PSA.py`` (commit 588b370d9f240d38832061a70c275cb6eb81232e),
transcribed, with copied weights; the paper's equations written out; the catalog's limits and invariants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.layers import PolarizedSelfAttention


def kaiming_init(module: nn.Module, a: float = 0, mode: str = "fan_out", nonlinearity: str = "relu",
                 bias: float = 0, distribution: str = "normal") -> None:
    """``kaiming_init`` of the official ``PSA.py``."""
    assert distribution in ["uniform", "normal"]
    if distribution == "uniform":
        nn.init.kaiming_uniform_(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
    else:
        nn.init.kaiming_normal_(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
    if hasattr(module, "bias") and module.bias is not None:
        nn.init.constant_(module.bias, bias)


class OfficialPSA(nn.Module):
    """``PSA_p`` (``sequential=False``) and ``PSA_s`` (``sequential=True``) of the official ``PSA.py``: the two
    classes share every line but ``conv_up``, the spatial softmax and ``forward``, which are kept apart below."""

    def __init__(self, inplanes: int, planes: int, sequential: bool, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.inter_planes = planes // 2
        self.planes = planes
        self.sequential = sequential
        ratio = 4
        self.conv_q_right = nn.Conv2d(self.inplanes, 1, kernel_size=1, stride=stride, padding=0, bias=False)
        self.conv_v_right = nn.Conv2d(self.inplanes, self.inter_planes, kernel_size=1, stride=stride, padding=0,
                                      bias=False)
        if sequential:
            self.conv_up = nn.Sequential(
                nn.Conv2d(self.inter_planes, self.inter_planes // ratio, kernel_size=1),
                nn.LayerNorm([self.inter_planes // ratio, 1, 1]),
                nn.ReLU(inplace=True),
                nn.Conv2d(self.inter_planes // ratio, self.planes, kernel_size=1))
        else:
            self.conv_up = nn.Conv2d(self.inter_planes, self.planes, kernel_size=1, stride=1, padding=0, bias=False)
        self.softmax_right = nn.Softmax(dim=2)
        self.sigmoid = nn.Sigmoid()
        self.conv_q_left = nn.Conv2d(self.inplanes, self.inter_planes, kernel_size=1, stride=stride, padding=0,
                                     bias=False)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_v_left = nn.Conv2d(self.inplanes, self.inter_planes, kernel_size=1, stride=stride, padding=0,
                                     bias=False)
        self.softmax_left = nn.Softmax(dim=2)
        for conv in (self.conv_q_right, self.conv_v_right, self.conv_q_left, self.conv_v_left):
            kaiming_init(conv, mode="fan_in")

    def spatial_pool(self, x: torch.Tensor) -> torch.Tensor:
        input_x = self.conv_v_right(x)
        batch, channel, height, width = input_x.size()
        input_x = input_x.view(batch, channel, height * width)
        context_mask = self.conv_q_right(x)
        context_mask = context_mask.view(batch, 1, height * width)
        context_mask = self.softmax_right(context_mask)
        context = torch.matmul(input_x, context_mask.transpose(1, 2))
        context = context.unsqueeze(-1)
        context = self.conv_up(context)
        mask_ch = self.sigmoid(context)
        return x * mask_ch

    def channel_pool(self, x: torch.Tensor) -> torch.Tensor:
        g_x = self.conv_q_left(x)
        batch, channel, height, width = g_x.size()
        avg_x = self.avg_pool(g_x)
        batch, channel, avg_x_h, avg_x_w = avg_x.size()
        avg_x = avg_x.view(batch, channel, avg_x_h * avg_x_w).permute(0, 2, 1)
        theta_x = self.conv_v_left(x).view(batch, self.inter_planes, height * width)
        if self.sequential:  # PSA_s
            theta_x = self.softmax_left(theta_x)
            context = torch.matmul(avg_x, theta_x)
        else:  # PSA_p
            context = torch.matmul(avg_x, theta_x)
            context = self.softmax_left(context)
        context = context.view(batch, 1, height, width)
        mask_sp = self.sigmoid(context)
        return x * mask_sp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sequential:
            return self.channel_pool(self.spatial_pool(x))
        return self.channel_pool(x) + self.spatial_pool(x)


def _randomise(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) / max(1, p[0].numel()) ** 0.5)


@pytest.mark.parametrize("impl", ["reassociated", "reference"])
@pytest.mark.parametrize("layout", ["parallel", "sequential"])
@pytest.mark.parametrize(("dim", "grid"), [(32, (9, 7)), (20, (1, 5)), (64, (14, 13))])
def test_official_psa_with_copied_weights(impl: str, layout: str, dim: int, grid: tuple[int, int]) -> None:
    torch.manual_seed(0)
    official = OfficialPSA(dim, dim, sequential=layout == "sequential").double()
    _randomise(official)
    ours = PolarizedSelfAttention(dim, layout, form="official", impl=impl).double()
    ours.load_state_dict(official.state_dict())
    x = torch.randn(2, dim, *grid, dtype=torch.float64, requires_grad=True)
    out, expected = ours(x), official(x)
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, (x, *ours.parameters()), g),
                               torch.autograd.grad(expected, (x, *official.parameters()), g))


def paper_psa(x: torch.Tensor, layer: PolarizedSelfAttention) -> torch.Tensor:
    """The paper's equations (its Eqs. for A^ch, A^sp, PSA_p, PSA_s) with plain tensor algebra."""
    def conv(m: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bchw->bohw", m.weight[:, :, 0, 0], t)

    def a_ch(t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        q = conv(layer.conv_q_right, t).reshape(b, h * w).softmax(-1)
        z = torch.einsum("bin,bn->bi", conv(layer.conv_v_right, t).reshape(b, c // 2, h * w), q)
        z = torch.einsum("oi,bi->bo", layer.conv_up.weight[:, :, 0, 0], z)
        return torch.sigmoid(layer.channel_norm(z)).view(b, c, 1, 1)

    def a_sp(t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        q = conv(layer.conv_q_left, t).mean((2, 3)).softmax(-1)
        v = conv(layer.conv_v_left, t).reshape(b, c // 2, h * w)
        return torch.sigmoid(torch.einsum("bi,bin->bn", q, v)).view(b, 1, h, w)

    if layer.layout == "parallel":
        return a_ch(x) * x + a_sp(x) * x
    y = a_ch(x) * x
    return a_sp(y) * y


@pytest.mark.parametrize("layout", ["parallel", "sequential"])
@pytest.mark.parametrize("impl", ["reassociated", "reference"])
def test_paper_form_is_the_papers_equations(layout: str, impl: str) -> None:
    torch.manual_seed(0)
    layer = PolarizedSelfAttention(12, layout, form="paper", impl=impl).double()
    _randomise(layer)
    x = torch.randn(3, 12, 5, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), paper_psa(x, layer))


def test_sequential_is_the_channel_gate_then_the_spatial_gate() -> None:
    """PSA_s(x) = Z^sp(Z^ch(x)): zeroing the spatial queries of the paper form makes the spatial softmax uniform,
    and then the sequential output is the channel-gated map times σ(mean_c W_v' y)."""
    torch.manual_seed(0)
    layer = PolarizedSelfAttention(8, "sequential").double()
    _randomise(layer)
    with torch.no_grad():
        layer.conv_q_left.weight.zero_()
    x = torch.randn(2, 8, 4, 6, dtype=torch.float64)
    z = layer.conv_v_right.weight[:, :, 0, 0]
    q = torch.einsum("oc,bchw->bohw", layer.conv_q_right.weight[:, :, 0, 0], x).flatten(2).softmax(-1)
    context = torch.einsum("ic,bcn,bn->bi", z, x.flatten(2), q[:, 0])
    gate = torch.sigmoid(layer.channel_norm(context @ layer.conv_up.weight[:, :, 0, 0].T))[:, :, None, None]
    y = gate * x
    value = torch.einsum("oc,bchw->bohw", layer.conv_v_left.weight[:, :, 0, 0], y)
    spatial = torch.sigmoid(value.mean(1, keepdim=True))
    torch.testing.assert_close(layer(x), spatial * y)


def test_zero_channel_query_pools_the_value_uniformly() -> None:
    """W_q = 0: the softmax over the positions is uniform, so the channel context is the spatial mean of W_v x."""
    layer = PolarizedSelfAttention(6, form="official").double()
    with torch.no_grad():
        layer.conv_q_right.weight.zero_()
    x = torch.randn(2, 6, 3, 7, dtype=torch.float64)
    mean_v = torch.einsum("ic,bc->bi", layer.conv_v_right.weight[:, :, 0, 0], x.mean((2, 3)))
    gate = torch.sigmoid(mean_v @ layer.conv_up.weight[:, :, 0, 0].T)[:, :, None, None]
    spatial = layer(x) - gate * x  # parallel: the rest is the spatial term, a gate in (0, 1) times x
    ratio = spatial / x
    assert ((ratio > 0) & (ratio < 1)).all()
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))


@pytest.mark.parametrize(("form", "layout"), [("paper", "parallel"), ("paper", "sequential"),
                                              ("official", "parallel"), ("official", "sequential")])
def test_parameter_counts(form: str, layout: str) -> None:
    c = 64
    half, r = c // 2, c // 8
    expected = {("paper", "parallel"): 2 * c * c + c + 2 * c, ("paper", "sequential"): 2 * c * c + c + 2 * c,
                ("official", "parallel"): 2 * c * c + c,
                ("official", "sequential"): c + c * half + (half * r + r) + 2 * r + (r * c + c) + 2 * half * c}
    layer = attnzoo.create("psa", dim=c, form=form, layout=layout)
    assert sum(p.numel() for p in layer.parameters()) == expected[form, layout]
    if form == "official":
        official = OfficialPSA(c, c, sequential=layout == "sequential")
        assert sum(p.numel() for p in official.parameters()) == expected[form, layout]
