"""HyperZ·Z·W (arXiv 2401.17948, paper 5): the context-dependent convolution against its limits (a delta kernel,
a spatially constant kernel = depthwise ``F.conv2d``), the FFT path on kernels larger than the grid, and the
official local branch ``HyperZZW_L`` (tests/official_hyperzzw.py, hyperevolnet/Terminator commit 458c8c5) with
copied weights, device-agnostic; the catalog's invariants (the standardised output has zero mean per channel,
the slow net is deterministic and resolution-agnostic). The registry-wide contract compares the implementations."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from official_comparison import close, randn
from official_hyperzzw import HyperZZW_2E, HyperZZW_G, HyperZZW_L, SlowNet_L, hyperzzw_state_dict_mapping

from attnzoo.layers import HyperZZWLocal, MAGNet
from attnzoo.ops.hyperzzw import hyperzzw_conv

IMPLS = ["conv", "fft", "reference"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("grid", "k"), [((7, 9), 3), ((5, 4), 9), ((1, 1), 5), ((12, 13), 25)])
def test_shared_kernel_is_a_depthwise_convolution(impl: str, grid: tuple[int, int], k: int) -> None:
    x, kernel = randn(2, 5, *grid), randn(5, 1, k, k, seed=1)
    expected = F.conv2d(x, kernel, padding=k // 2, groups=5)
    close(hyperzzw_conv(x, kernel[:, 0].expand(2, 5, k, k), impl=impl), expected, atol=1e-11)


@pytest.mark.parametrize("impl", IMPLS)
def test_per_sample_kernels_are_independent(impl: str) -> None:
    x, kernel = randn(3, 4, 6, 7), randn(3, 4, 5, 5, seed=1)
    out = hyperzzw_conv(x, kernel, impl=impl)
    for b in range(3):
        close(out[b:b + 1], F.conv2d(x[b:b + 1], kernel[b, :, None], padding=2, groups=4), atol=1e-11)


def _official_layer(dim: int, k: int, hidden: int, num_layers: int, omega_0: float) -> HyperZZW_L:
    cfg = types.SimpleNamespace(no_hidden=hidden, num_layers=num_layers, omega_0=omega_0)

    def slow_net(in_channels: int, out_channels: int, kernel_size: int) -> SlowNet_L:
        return SlowNet_L(in_channels=in_channels, data_dim=2, kernel_cfg=cfg, kernel_size=kernel_size)

    return HyperZZW_L(slow_net, in_channels=dim, kernel_size=k)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("k", "num_layers"), [(3, 2), (7, 1), (9, 3)])
def test_official_local_branch_with_copied_weights(impl: str, k: int, num_layers: int) -> None:
    torch.manual_seed(0)
    official = _official_layer(6, k, 8, num_layers, 0.5).double()
    x = randn(3, 6, 9, 11).requires_grad_()
    official(x, x)   # the first call applies Chang's output scaling, as ours does at construction
    ours = HyperZZWLocal(6, kernel_size=k, hidden=8, num_layers=num_layers, omega_0=0.5, impl=impl).double()
    with torch.no_grad():
        official.fast_bias.fill_(0.3)
        official.slow_net.Kernel.bias_pk.normal_(std=0.1)
    state = official.state_dict()
    ours.load_state_dict({name: state[off] for name, off in hyperzzw_state_dict_mapping(num_layers).items()})
    expected, out = official(x, x), ours(x)
    close(out, expected, atol=1e-10)
    cotangent = randn(*out.shape, seed=4)
    mapping = hyperzzw_state_dict_mapping(num_layers)
    names = list(mapping)
    got = torch.autograd.grad(out, [x, *(ours.get_parameter(n) for n in names)], cotangent)
    want = torch.autograd.grad(expected, [x, *(official.get_parameter(mapping[n]) for n in names)], cotangent)
    for g, w in zip(got, want, strict=True):
        close(g, w, atol=1e-9)


def test_standardised_output_and_determinism() -> None:
    torch.manual_seed(0)
    layer = HyperZZWLocal(5, kernel_size=5).double()
    x = randn(4, 5, 8, 8)
    with torch.no_grad():
        pre = layer.channel_mixer(hyperzzw_conv(x, layer.slow_net(x).expand(4, -1, -1, -1)))
        standardised = layer.standardize(pre)
    assert standardised.mean(dim=(0, 2, 3)).abs().max() < 1e-12
    close(layer(x), layer(x))   # the slow net has no randomness after construction
    assert torch.isfinite(layer(x)).all()


def test_sample_context_is_batch_independent() -> None:
    torch.manual_seed(0)
    net = MAGNet(4, kernel_size=3, context="sample").double()
    x = randn(3, 4, 6, 6)
    close(net(x)[1:2], net(x[1:2]))
    assert MAGNet(4, kernel_size=3)(x.float()).shape == (1, 4, 3, 3)


def test_global_operator_is_the_explicit_product() -> None:
    """The official global ``HyperZZW_G(x ⊙ W, y)``: ``(Z ⊙ W)`` times ``Y`` per channel, as an einsum."""
    z, w, y = randn(2, 3, 6, 6), randn(1, 3, 6, 6, seed=1), randn(2, 3, 6, 6, seed=2)
    close(HyperZZW_G(z.mul(w), y), torch.einsum("bchw,bcwk->bchk", z * w, y))
    close(HyperZZW_2E(w, z), z * w * z)
