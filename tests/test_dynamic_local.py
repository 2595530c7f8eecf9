"""DLGSANet's MHDLSA (arXiv 2301.02031): the dynamic depthwise filtering against a transcription of the official
CuPy kernels (forward and both backward kernels, tests/official_dlgsanet.py), spatially constant kernels against
a grouped depthwise ``F.conv2d``, the official ``IDynamicDWConvBlock`` with its ``state_dict`` loaded into the
layer, NaN reaching only the windows that hold it, and the layer in the ViT. The registry-wide contract
(tests/test_contract.py) compares the implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from official_comparison import assert_layer_matches_official, close, randn
from official_dlgsanet import OfficialIDynamicDWConvBlock, idynamic_forward

from attnzoo.layers import DynamicDepthwiseConv, DynamicLocalAttention
from attnzoo.models import VisionTransformer
from attnzoo.ops import dynamic_local_attention_2d

IMPLS = ["unfold", "reference"]


def channels_first(value: torch.Tensor) -> torch.Tensor:
    """Our ``(B, G, X, Y, D)`` as the kernel's ``(B, C, H, W)``, channel ``c = g D + d``."""
    b, g, x, y, d = value.shape
    return value.permute(0, 1, 4, 2, 3).reshape(b, g * d, x, y)


def to_official(value: torch.Tensor, weights: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Our ``(B, G, X, Y, D)`` / ``(B, G, X, Y, k²)`` as the kernel's ``(B, C, H, W)`` / ``(B, G, k, k, H, W)``."""
    b, g, x, y, _ = value.shape
    return channels_first(value), weights.view(b, g, x, y, k, k).permute(0, 1, 4, 5, 2, 3)


def from_official(out: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, x, y = out.shape
    return out.view(b, groups, c // groups, x, y).permute(0, 1, 3, 4, 2)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("grid", "k"), [((6, 7), 3), ((5, 4), 7), ((1, 9), 5), ((4, 4), 1)])
def test_matches_the_official_cuda_kernels(impl: str, grid: tuple[int, int], k: int) -> None:
    """Forward = ``idynamic_forward_kernel``; the value and weight gradients = the two backward kernels."""
    value = randn(2, 3, *grid, 4, seed=1).requires_grad_()
    weights = randn(2, 3, *grid, k * k, seed=2).requires_grad_()
    out = dynamic_local_attention_2d(value, weights, k, impl=impl)
    bottom, kernel = to_official(value, weights, k)
    official = _official(bottom, kernel, k)
    close(out, from_official(official, 3))
    cotangent = randn(*out.shape, seed=3)
    grads = torch.autograd.grad(out, (value, weights), cotangent)
    expected = torch.autograd.grad(official, (value, weights), channels_first(cotangent))
    for got, want in zip(grads, expected):
        close(got, want)


def _official(bottom: torch.Tensor, kernel: torch.Tensor, k: int) -> torch.Tensor:
    from official_dlgsanet import _idynamic

    return _idynamic.apply(bottom, kernel, 1, (k - 1) // 2, 1)


@pytest.mark.parametrize("impl", IMPLS)
def test_spatially_constant_kernels_are_a_grouped_depthwise_convolution(impl: str) -> None:
    b, g, d, k = 2, 3, 4, 5
    kernels = randn(b, g, k * k)
    value = randn(b, g, 9, 8, d, seed=1)
    out = dynamic_local_attention_2d(value, kernels[:, :, None, None].expand(b, g, 9, 8, k * k).contiguous(), k,
                                     impl=impl)
    for n in range(b):  # conv2d's weight has no batch: one call per sample, each channel its group's kernel
        weight = kernels[n].view(g, 1, 1, k, k).expand(g, d, 1, k, k).reshape(g * d, 1, k, k)
        expected = F.conv2d(channels_first(value[n:n + 1]), weight, padding=k // 2, groups=g * d)
        close(out[n:n + 1], from_official(expected, g))


def test_the_kernel_transcription_is_its_own_reference() -> None:
    """The transcribed forward kernel against a direct loop over output pixels (guards the transcription)."""
    bottom, kernel = randn(1, 4, 4, 5), randn(1, 2, 3, 3, 4, 5, seed=1)
    expected = torch.zeros(1, 4, 4, 5, dtype=torch.float64)
    for c in range(4):
        for h in range(4):
            for w in range(5):
                for kh in range(3):
                    for kw in range(3):
                        hi, wi = h - 1 + kh, w - 1 + kw
                        if 0 <= hi < 4 and 0 <= wi < 5:
                            expected[0, c, h, w] += kernel[0, c // 2, kh, kw, h, w] * bottom[0, c, hi, wi]
    close(idynamic_forward(bottom, kernel, 1, 1, 1), expected)


@pytest.mark.parametrize(("dim", "heads", "k", "grid"), [(48, 6, 7, (12, 10)), (16, 4, 3, (5, 5)), (8, 8, 5, (3, 7))])
def test_layer_loads_the_official_block_state_dict(dim: int, heads: int, k: int, grid: tuple[int, int]) -> None:
    torch.manual_seed(0)
    official = OfficialIDynamicDWConvBlock(dim, k, heads).double()
    ours = DynamicLocalAttention(dim, heads, k).double()
    ours.load_state_dict(official.state_dict())  # the official parameter names, strict
    assert_layer_matches_official(official, ours, randn(2, dim, *grid).requires_grad_())


def test_depthwise_conv_module_is_channels_first() -> None:
    module = DynamicDepthwiseConv(12, 3, 4).double()
    x = randn(2, 12, 5, 6)
    assert module(x).shape == x.shape and module.kernels(x).shape == (2, 3, 5, 6, 9)
    with pytest.raises(ValueError, match="dim=12 must be divisible by num_heads=5"):
        DynamicDepthwiseConv(12, 3, 5)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_nan_value_reaches_exactly_the_windows_that_hold_it(impl: str) -> None:
    value, weights = randn(1, 2, 9, 8, 3), randn(1, 2, 9, 8, 9, seed=1)
    clean = dynamic_local_attention_2d(value, weights, 3, impl=impl)
    value[0, 1, 4, 5, 2] = float("nan")
    out = dynamic_local_attention_2d(value, weights, 3, impl=impl)
    expected = torch.zeros_like(out, dtype=torch.bool)
    expected[0, 1, 3:6, 4:7, 2] = True
    assert torch.equal(out.isnan(), expected)
    close(out[~expected], clean[~expected])


def test_builds_in_the_vit_from_the_registry() -> None:
    model = VisionTransformer(mixer="mhdlsa", dim=32, depth=2, mixer_kwargs={"num_heads": 8, "kernel_size": 5})
    logits = model(torch.randn(2, 1, 28, 28))
    logits.sum().backward()
    assert logits.shape == (2, 10) and model.blocks[0].mixer.conv.groups == 4
