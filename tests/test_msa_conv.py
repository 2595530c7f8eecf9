"""TiC MSA-Conv (arXiv 2310.04134): the official pure-PyTorch check transcribed, reductions to global attention
and to the values, conv arithmetic, the layer's options and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.layers.msa_conv import MSAConvAttention, shift_heads
from attnzoo.ops.msa_conv import msa_conv_attention
from attnzoo.ops.softmax import softmax_attention

IMPLS = ("reference", "gathered")


def official_msa_conv(Q, K, V, ks1, ks2, dr, scale):  # noqa: ANN001, ANN201
    """The unfold check of ``validation.py`` (``cascade_test``) of StriveZs/MSA-Conv at commit
    2d96f54799aab37d92e7400061d3d04ec27b40b5, transcribed with the einops rearranges written as reshapes: it is
    what the repository checks its CUDA ``MSA_Conv2d_v1`` / ``MSA_Conv2d_1_v1`` against. ``(B, C, H, W)`` inputs,
    one head, window ``(ks1, ks2)``, dilation ``dr``, zero padding ``dr·(k-1)/2``, stride 1; the scale is the
    module's ``C^-1/2`` (``Transformer_in_Convolution.py``), left out of the check itself."""
    b, c, h, w = Q.shape
    unfold = nn.Unfold(kernel_size=(ks1, ks2), stride=1, dilation=dr, padding=(dr * (ks1 - 1) // 2, dr * (ks2 - 1) // 2))
    k = unfold(K).reshape(b, c, ks1 * ks2, h * w).permute(2, 1, 0, 3).reshape(ks1 * ks2, c, b * h * w)
    q = Q.permute(1, 0, 2, 3).reshape(c, b * h * w).unsqueeze(0)
    dot = torch.sum(torch.mul(q, k), dim=1) * scale  # (K, BHW)
    attn = nn.Softmax(dim=0)(dot)  # softmax over the window (the official dim=1 of (B, K, H, W))
    v = unfold(V).reshape(b, c, ks1 * ks2, h * w).permute(2, 1, 0, 3).reshape(ks1 * ks2, c, b * h * w)
    out = torch.sum(attn.unsqueeze(1) * v, dim=0)  # (C, BHW)
    return out.reshape(c, b, h, w).permute(1, 0, 2, 3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("ks", "dr"), [((3, 3), 1), ((5, 1), 2), ((7, 5), 1)])
def test_equals_the_official_unfold_check(impl, ks, dr) -> None:
    """padding_keys='zeros' (zero keys and values in the padding, attended) is the official operator."""
    torch.manual_seed(0)
    q, k, v = torch.rand(3, 2, 6, 9, 8, dtype=torch.float64).unbind(0)  # torch.rand as the official check
    expected = official_msa_conv(q, k, v, *ks, dr, scale=6 ** -0.5)
    as_grid = [t.permute(0, 2, 3, 1)[:, None] for t in (q, k, v)]  # (B, 1, H, W, C): one head
    out = msa_conv_attention(*as_grid, kernel_size=ks, dilation=dr, padding_keys="zeros", impl=impl)
    torch.testing.assert_close(out[:, 0].permute(0, 3, 1, 2), expected, atol=1e-13, rtol=0)


def _qkv(shape: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("impl", IMPLS)
def test_one_window_over_the_image_is_global_attention_of_the_centre(impl) -> None:
    """kernel = image size, padding 0, stride = image size: one output, the centre pixel's global attention."""
    q, k, v = _qkv((2, 3, 7, 5, 4))
    out = msa_conv_attention(q, k, v, kernel_size=(7, 5), stride=(7, 5), padding=0, impl=impl)
    assert out.shape == (2, 3, 1, 1, 4)
    dense = softmax_attention(q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3), impl="reference")
    torch.testing.assert_close(out.flatten(2, 3), dense[:, :, 3 * 5 + 2:3 * 5 + 3], atol=1e-13, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_masked_window_of_twice_the_image_is_global_attention(impl) -> None:
    """kernel 2L - 1 at stride 1: every pixel's window holds the whole image, the rest is masked padding."""
    q, k, v = _qkv((1, 2, 6, 4, 5))
    out = msa_conv_attention(q, k, v, kernel_size=(11, 7), impl=impl)
    dense = softmax_attention(q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3), impl="reference")
    torch.testing.assert_close(out.flatten(2, 3), dense, atol=1e-13, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("stride", [1, 2, (3, 2)])
def test_kernel_one_returns_the_values_at_the_strided_pixels(impl, stride) -> None:
    q, k, v = _qkv((2, 2, 7, 8, 3))
    out = msa_conv_attention(q, k, v, kernel_size=1, stride=stride, impl=impl)
    sx, sy = (stride, stride) if isinstance(stride, int) else stride
    torch.testing.assert_close(out, v[:, :, ::sx, ::sy], atol=0, rtol=0)


@pytest.mark.parametrize(("grid", "kernel", "stride", "dilation", "padding"),
                         [((9, 7), 3, 1, 1, 1), ((12, 10), 5, 2, 2, 3), ((11, 13), (3, 5), (3, 1), (2, 1), (0, 2)),
                          ((8, 8), 7, 4, 1, 0), ((5, 6), 3, 2, 3, 3)])
def test_shapes_follow_conv_arithmetic(grid, kernel, stride, dilation, padding) -> None:
    """X' = floor((X + 2p - d(k - 1) - 1) / s) + 1, as nn.Conv2d's output."""
    q, k, v = _qkv((1, 1, *grid, 2))
    out = msa_conv_attention(q, k, v, kernel, stride, dilation, padding)
    conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation)(torch.zeros(1, 1, *grid))
    assert out.shape[2:4] == conv.shape[2:]


def test_masked_padding_differs_from_zero_padding_only_at_the_border() -> None:
    """Interior windows hold no padding: both modes agree there and differ at the border."""
    q, k, v = _qkv((1, 2, 8, 8, 4))
    masked = msa_conv_attention(q, k, v, kernel_size=3)
    zeros = msa_conv_attention(q, k, v, kernel_size=3, padding_keys="zeros")
    torch.testing.assert_close(masked[:, :, 1:-1, 1:-1], zeros[:, :, 1:-1, 1:-1], atol=1e-14, rtol=0)
    assert (masked[:, :, 0] - zeros[:, :, 0]).abs().min() > 0


def test_layer_without_options_is_qkv_op_proj_and_is_resolution_agnostic() -> None:
    layer = MSAConvAttention(16, 2, kernel_size=5, dilation=2).double()
    for size in ((8, 8), (12, 6)):
        x = torch.randn(2, *size, 16, dtype=torch.float64)
        q, k, v = layer.qkv(x).unflatten(-1, (3, 2, 8)).permute(3, 0, 4, 1, 2, 5)
        expected = layer.proj(msa_conv_attention(q, k, v, 5, 1, 2).permute(0, 2, 3, 1, 4).flatten(3))
        torch.testing.assert_close(layer(x), expected, atol=1e-13, rtol=0)


def test_layer_stride_shrinks_the_grid() -> None:
    layer = MSAConvAttention(8, 2, kernel_size=3, stride=2)
    assert layer(torch.randn(1, 9, 6, 8)).shape == (1, 5, 3, 8)


def test_cyclic_shift_rolls_each_heads_keys_in_its_direction() -> None:
    """Head h's keys/values are rolled by the shift in direction h mod 4 (torch.roll, wrapping around); the shift
    changes the layer's output on a random image and not on a constant one (rolling a constant is the identity)."""
    x = torch.arange(2 * 5 * 6 * 4, dtype=torch.float64).reshape(1, 4, 5, 6, 2)
    rolled = shift_heads(x, 2)
    for h, (dx, dy) in enumerate(((2, 0), (-2, 0), (0, 2), (0, -2))):
        torch.testing.assert_close(rolled[:, h], torch.roll(x[:, h], (dx, dy), (1, 2)), atol=0, rtol=0)
    layer = MSAConvAttention(8, 4, kernel_size=1, cyclic_shift=1).double()
    plain = MSAConvAttention(8, 4, kernel_size=1).double()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(1, 5, 5, 8, dtype=torch.float64)
    shifted, unshifted = layer(x), plain(x)
    assert not torch.allclose(shifted, unshifted)
    flat = torch.ones(1, 5, 5, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(flat), plain(flat), atol=1e-13, rtol=0)


def test_inter_pooling_pools_keys_and_values_only() -> None:
    """inter_pooling=p: keys and values come from the p x p average (padding excluded), queries from x."""
    layer = MSAConvAttention(8, 2, kernel_size=3, inter_pooling=3).double()
    x = torch.randn(1, 6, 7, 8, dtype=torch.float64)
    pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), 3, 1, 1, count_include_pad=False).permute(0, 2, 3, 1)
    q = layer.qkv(x).unflatten(-1, (3, 2, 4)).permute(3, 0, 4, 1, 2, 5)[0]
    _, k, v = layer.qkv(pooled).unflatten(-1, (3, 2, 4)).permute(3, 0, 4, 1, 2, 5)
    expected = layer.proj(msa_conv_attention(q, k, v, 3).permute(0, 2, 3, 1, 4).flatten(3))
    torch.testing.assert_close(layer(x), expected, atol=1e-13, rtol=0)


def test_layer_errors() -> None:
    with pytest.raises(ValueError, match=r"dim=30 must be divisible by num_heads=4"):
        MSAConvAttention(30, 4)
    with pytest.raises(ValueError, match=r"kernel_size=4: expected odd sizes"):
        MSAConvAttention(32, 4, kernel_size=4)
    with pytest.raises(ValueError, match=r"stride=0: every entry must be >= 1"):
        MSAConvAttention(32, 4, stride=0)
    with pytest.raises(ValueError, match=r"the dilated window d·\(k - 1\) \+ 1 = 9 on axis 0 is larger than the "
                                         r"padded image 4 \+ 2·0 = 4"):
        MSAConvAttention(8, 1, kernel_size=3, dilation=4, padding=0)(torch.randn(1, 4, 9, 8))
