"""MEDUSA (arXiv 2110.06063, paper 18): the head equation and its limits (a zero head is the plain backbone,
gradients reach the body from every head), the interpolation oracle against ``F.interpolate``, and the official
TF code (lindawangg/COVID-Net commit b56ba63: ``model/build_model.py`` ``build_UNet2D_4L``, ``model/resnet1.py``
``set_attention`` / ``apply_attention``) transcribed on its channels-last layout (tests/official_tf_layers.py) with
our weights copied in. The registry-wide contract (tests/test_contract.py) compares the implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from official_comparison import close, randn
from official_tf_layers import keras_conv2d, max_pooling_2x2, tf_image_resize, up_sampling_2x2

from attnzoo.layers import MedusaBody, MedusaHead
from attnzoo.ops.medusa import medusa_attention
from attnzoo.ops.taps import resize_bilinear

IMPLS = ["conv", "reference"]


def tf_kernel(conv: torch.nn.Conv2d) -> torch.Tensor:
    """A PyTorch ``(Cout, Cin, k, k)`` weight as Keras's ``(k, k, Cin, Cout)``."""
    return conv.weight.permute(2, 3, 1, 0)


def official_unet(body: MedusaBody, data: torch.Tensor) -> torch.Tensor:
    """``build_UNet2D_4L`` with the ``sem/1 .. sem/34`` layers taken from ``body`` (channels last)."""
    def convs_of(module):
        return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]

    convs = [c for e in body.encoders for c in convs_of(e)] + convs_of(body.bottleneck)
    for decoder, merge in zip(body.decoders, body.merges):
        convs += convs_of(decoder) + convs_of(merge)
    layer = iter([*convs, body.out])

    def conv(x, activation="relu"):
        c = next(layer)
        return keras_conv2d(x, tf_kernel(c), c.bias, activation)

    conv1 = conv(conv(data))
    pool1 = max_pooling_2x2(conv1)
    conv2 = conv(conv(pool1))
    pool2 = max_pooling_2x2(conv2)
    conv3 = conv(conv(pool2))
    pool3 = max_pooling_2x2(conv3)
    conv4 = conv(conv(pool3))
    pool4 = max_pooling_2x2(conv4)
    conv5 = conv(pool4)
    up1 = up_sampling_2x2(conv5)
    conv6 = conv(conv(up1))
    conv6 = conv(torch.cat([conv4, conv6], dim=-1))
    up2 = up_sampling_2x2(conv6)
    conv7 = conv(conv(up2))
    conv7 = conv(torch.cat([conv3, conv7], dim=-1))
    up3 = up_sampling_2x2(conv7)
    conv8 = conv(conv(up3))
    conv8 = conv(torch.cat([conv2, conv8], dim=-1))
    up4 = up_sampling_2x2(conv8)
    conv9 = conv(conv(up4))
    conv9 = conv(torch.cat([conv1, conv9], dim=-1))
    return conv(conv9, "sigmoid")


def official_apply_attention(head: MedusaHead, output_s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``apply_attention``: ``x + x * set_attention(output_s, x)``, ``set_attention`` = ``tf.image.resize`` to x's
    grid then ``Conv2D(C, 7, padding="same")`` (channels last)."""
    fixed_image = tf_image_resize(output_s, x.shape[1:-1])
    return x + x * keras_conv2d(fixed_image, tf_kernel(head.conv), head.conv.bias)


def test_official_body_and_heads() -> None:
    """Our body and heads on NCHW against the official graph on NHWC, forward and backward."""
    torch.manual_seed(0)
    body = MedusaBody(encoder_widths=(4, 6, 6, 8), bottleneck=10, decoder_widths=(10, 8, 6, 4)).double()
    heads = [MedusaHead(c).double() for c in (5, 7)]
    with torch.no_grad():
        for head in heads:
            head.conv.bias.normal_()
    image = randn(2, 1, 32, 48).requires_grad_()
    features = [randn(2, 5, 12, 16, seed=1).requires_grad_(), randn(2, 7, 5, 3, seed=2).requires_grad_()]
    saliency = body(image)
    ours = [head(f, saliency) for head, f in zip(heads, features)]
    output_s = official_unet(body, image.permute(0, 2, 3, 1))
    close(saliency.permute(0, 2, 3, 1), output_s)
    official = [official_apply_attention(head, output_s, f.permute(0, 2, 3, 1)) for head, f in zip(heads, features)]
    for got, want in zip(ours, official, strict=True):
        close(got.permute(0, 2, 3, 1), want)
    loss = sum((o * randn(*o.shape, seed=5)).sum() for o in ours)
    loss_official = sum((o * randn(o.shape[0], o.shape[3], *o.shape[1:3], seed=5).permute(0, 2, 3, 1)).sum()
                        for o in official)
    params = [image, *features, *body.parameters(), *(p for h in heads for p in h.parameters())]
    for g, w in zip(torch.autograd.grad(loss, params), torch.autograd.grad(loss_official, params), strict=True):
        close(g, w, atol=1e-10)


@pytest.mark.parametrize(("size_in", "size_out"), [((32, 32), (7, 9)), ((5, 4), (11, 12)), ((1, 1), (3, 2)),
                                                   ((9, 7), (9, 7)), ((16, 15), (4, 5))])
def test_interpolation_oracles_agree(size_in: tuple[int, int], size_out: tuple[int, int]) -> None:
    """The explicit interpolation matrices, F.interpolate and the TF2 half-pixel rule: one resize."""
    s = randn(2, 3, *size_in)
    expected = F.interpolate(s, size=size_out, mode="bilinear", align_corners=False)
    close(resize_bilinear(s, size_out), expected)
    close(tf_image_resize(s.permute(0, 2, 3, 1), size_out).permute(0, 3, 1, 2), expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_head_is_the_plain_backbone(impl: str) -> None:
    x, s = randn(2, 6, 7, 9), torch.rand(2, 1, 20, 20, dtype=torch.float64)
    assert torch.equal(medusa_attention(x, s, torch.zeros(6, 1, 7, 7, dtype=torch.float64), impl=impl), x)
    # a zero saliency map with a zero bias: A = 0 too, whatever the weights
    out = medusa_attention(x, torch.zeros_like(s), randn(6, 1, 7, 7), torch.zeros(6, dtype=torch.float64), impl=impl)
    assert torch.equal(out, x)


def test_gradients_reach_the_body_from_every_head() -> None:
    torch.manual_seed(0)
    body = MedusaBody(encoder_widths=(2, 2, 2, 2), bottleneck=2, decoder_widths=(2, 2, 2, 2))
    heads = [MedusaHead(c) for c in (3, 4, 5)]
    image = torch.randn(1, 1, 16, 16)
    saliency = body(image)
    for head, grid in zip(heads, ((8, 8), (4, 4), (2, 2))):
        body.zero_grad()
        head(torch.randn(1, head.dim, *grid), saliency).sum().backward(retain_graph=True)
        assert body.out.weight.grad.abs().sum() > 0


def test_head_initialisation_is_he_normal() -> None:
    torch.manual_seed(0)
    head = MedusaHead(256)
    std = (2.0 / 49) ** 0.5
    assert head.conv.weight.abs().max() <= 2 * std + 1e-7
    assert abs(head.conv.weight.std().item() - 0.88 * std) < 0.05 * std   # a normal truncated at 2 sigma
    assert torch.equal(head.conv.bias, torch.zeros(256))


def test_body_and_head_input_errors() -> None:
    body = MedusaBody(encoder_widths=(2, 2, 2, 2), bottleneck=2, decoder_widths=(2, 2, 2, 2))
    with pytest.raises(ValueError, match=r"image has grid 30x32; expected multiples of 16"):
        body(torch.randn(1, 1, 30, 32))
    with pytest.raises(ValueError, match=r"image has shape \(1, 3, 16, 16\), 3 channels; expected"):
        body(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"decoder_widths=\(2, 2\): expected a sequence of 4 ints"):
        MedusaBody(decoder_widths=(2, 2))
    with pytest.raises(ValueError, match=r"kernel_size=4: expected an odd int >= 1"):
        MedusaHead(8, kernel_size=4)
    head = MedusaHead(8)
    with pytest.raises(ValueError, match=r"saliency has shape \(2, 1, 9, 9\); expected x's batch 1"):
        head(torch.randn(1, 8, 5, 5), torch.rand(2, 1, 9, 9))
