"""attnzoo.quant modules: straight-through gradients (identity, and clipped against torch's own fake
quantisation), activation quantizers' calibrate / freeze / dynamic modes, QuantLinear on nn.Linear and
Hugging Face's Conv1D, and a few steps of quantisation-aware training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.quant import (
    ActivationQuantizer,
    Granularity,
    QuantLinear,
    RunningMinMaxObserver,
    TernaryQuantizer,
    UniformQuantizer,
    fake_quantize,
)
from attnzoo.registry import NotSupportedError


def test_identity_ste_passes_the_gradient_of_the_dequantized_weight() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(16, 8)
    layer = QuantLinear.from_module(linear, weight_quantizer=TernaryQuantizer("absmedian"))
    x = torch.randn(5, 16)
    layer(x).square().sum().backward()
    w_hat = TernaryQuantizer("absmedian").quantize(linear.weight.detach()).requires_grad_()
    F.linear(x, w_hat, linear.bias.detach()).square().sum().backward()
    assert layer.weight is linear.weight  # the same parameter: ties survive
    torch.testing.assert_close(linear.weight.grad, w_hat.grad, rtol=0, atol=0)
    assert torch.equal(layer(x).detach(), F.linear(x, w_hat.detach(), linear.bias.detach()))


def test_clipped_ste_is_the_gradient_of_torch_fake_quantize() -> None:
    torch.manual_seed(1)
    x = (torch.randn(200) * 3).requires_grad_()
    q = UniformQuantizer(4, symmetric=False)
    params = q.params_from_range(torch.tensor(-2.0), torch.tensor(3.0))
    upstream = torch.randn(200)
    (fake_quantize(x, q, params, ste="clipped") * upstream).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (torch.fake_quantize_per_tensor_affine(x, params.scale, params.zero_point.int(), 0, 15) * upstream).sum().backward()
    assert torch.equal(ours, x.grad)
    assert (ours == 0).any() and (ours != 0).any()  # both regimes exercised
    with pytest.raises(ValueError, match="ste='straight'"):
        fake_quantize(x, q, params, ste="straight")


def test_activation_quantizer_calibrates_freezes_and_saves_its_parameters() -> None:
    aq = ActivationQuantizer(UniformQuantizer(8, symmetric=False), RunningMinMaxObserver())
    x = torch.randn(4, 10)
    assert aq.mode == "calibrate" and torch.equal(aq(x), x)
    with pytest.raises(ValueError, match="before freeze"):
        aq.set_mode("quantize")
    aq.freeze()
    state = aq.state_dict()
    assert set(state) == {"scale", "zero_point"}
    out = aq(x * 10)
    step = float(aq.scale)  # clipped to the calibrated range (its ends rounded to the grid)
    assert x.max() - step <= out.max() <= x.max() + step and x.min() - step <= out.min() <= x.min() + step
    fresh = ActivationQuantizer(UniformQuantizer(8, symmetric=False), RunningMinMaxObserver())
    fresh.load_state_dict(state)
    assert fresh.mode == "quantize"
    assert torch.equal(fresh(x * 10), out)
    aq.set_mode("off")
    assert torch.equal(aq(x * 10), x * 10)


def test_dynamic_activation_quantizer_and_refusals() -> None:
    per_token = ActivationQuantizer(UniformQuantizer(8, granularity=Granularity.per_row()))
    x = torch.randn(2, 3, 16)
    expected = torch.stack([torch.stack([UniformQuantizer(8).quantize(t) for t in row]) for row in x])
    assert torch.equal(per_token(x), expected)
    with pytest.raises(ValueError, match="needs an observer"):
        per_token.set_mode("calibrate")
    with pytest.raises(NotSupportedError, match="TernaryQuantizer has no range parameterisation"):
        ActivationQuantizer(TernaryQuantizer(), RunningMinMaxObserver())
    with pytest.raises(TypeError, match="expected an attnzoo.quant Quantizer"):
        ActivationQuantizer("int8")


def test_quant_linear_wraps_a_huggingface_conv1d() -> None:
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    torch.manual_seed(2)
    conv = pytorch_utils.Conv1D(12, 20)  # nf=12 outputs, nx=20 inputs, weight (20, 12)
    x = torch.randn(3, 7, 20)
    plain = QuantLinear.from_module(conv)
    assert (plain.in_features, plain.out_features) == (20, 12)
    torch.testing.assert_close(plain(x), conv(x))
    q = UniformQuantizer(4, granularity=Granularity.per_row())
    layer = QuantLinear.from_module(conv, weight_quantizer=q)
    torch.testing.assert_close(layer(x), F.linear(x, q.quantize(conv.weight.detach().t()), conv.bias.detach()))
    assert layer.encode_weight().codes.shape == (12, 20)


def test_quantization_aware_training_learns_through_the_ste() -> None:
    torch.manual_seed(3)
    teacher = nn.Linear(32, 4)
    student = QuantLinear.from_module(nn.Linear(32, 4), weight_quantizer=UniformQuantizer(4, granularity=Granularity.per_row()),
                                      input_quantizer=ActivationQuantizer(UniformQuantizer(8, granularity=Granularity.per_row())))
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    x = torch.randn(256, 32)
    with torch.no_grad():
        target = teacher(x)
    losses = []
    for _ in range(150):
        loss = F.mse_loss(student(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
