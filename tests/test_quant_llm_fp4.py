"""LLM-FP4 (arXiv 2310.16836): the pre-shifted exponent-bias reparameterization is exact (float64, bit for bit),
the alternating bias search never ends worse than the min-max initialisation, the format search picks the best
split, and the whole-model path is a copy with per-tensor activation quantizers, frozen weights and bad input
refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.quant import FloatQuantizer, Granularity, QParams, QuantLinear
from attnzoo.quant.methods.llm_fp4 import (
    FP4Options,
    PowerOfTwoScale,
    channel_shifts,
    initial_bias,
    llm_fp4,
    search_formats,
    search_layer,
)


def outlier_inputs(seed: int, tokens: int = 200, channels: int = 32, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = torch.exp(torch.randn(channels, generator=g, dtype=dtype) * 1.5)  # channels of very different range
    return torch.randn(tokens, channels, generator=g, dtype=dtype) * scale


@pytest.mark.parametrize("e", [1, 2, 3])
def test_per_channel_biases_equal_per_tensor_quantization_of_shifted_inputs_exactly(e: int) -> None:
    x = outlier_inputs(e, dtype=torch.float64)
    w = torch.randn(24, 32, dtype=torch.float64)
    per_tensor = FloatQuantizer(4, e)
    tensor_bias, rho = channel_shifts(x, per_tensor)
    assert bool(((rho >= 0) & (rho <= 2 ** e - 1) & (rho == rho.round())).all())
    per_channel = FloatQuantizer(4, e, granularity=Granularity.per_channel(-1))
    scales = per_tensor.params_from_bias(tensor_bias).scale * torch.exp2(-rho)  # bias b̃ + ρ_j per channel
    direct = F.linear(per_channel.quantize(x, QParams(scales)), w)
    shifted = PowerOfTwoScale(rho)(x)
    folded = torch.ldexp(w, -rho)
    reparam = F.linear(per_tensor.quantize(shifted, per_tensor.params_from_bias(tensor_bias)), folded)
    assert torch.equal(direct, reparam)
    assert torch.equal(F.linear(shifted, folded), F.linear(x, w))


def test_search_is_never_worse_than_min_max_and_picks_the_best_format() -> None:
    x = outlier_inputs(7)
    layer = nn.Linear(32, 16)
    w, b = layer.weight.detach(), layer.bias.detach()
    y = F.linear(x, w, b)
    options = FP4Options(candidates=8, rounds=1, bias_correction=False, per_channel_activations=False)
    found_by_e = {e: search_layer(w, b, x, e, options) for e in (1, 2, 3)}
    for e, found in found_by_e.items():
        wf, af = FloatQuantizer(4, e, granularity=Granularity.per_row()), FloatQuantizer(4, e)
        minmax = F.linear(af.quantize(x, af.params_from_bias(initial_bias(x.abs().amax(), af))),
                          wf.quantize(w, wf.params_from_bias(initial_bias(w.abs().amax(dim=1), wf))), b)
        assert found.error <= float(((minmax - y) ** 2).mean()) * (1 + 1e-6)
    best = search_formats(w, b, x, options)
    assert best.error == min(found.error for found in found_by_e.values())
    shifted = search_layer(w, b, x, 2, FP4Options(candidates=8, rounds=1, bias_correction=False))
    assert shifted.error < found_by_e[2].error  # per-channel shifts help outlier channels


def test_llm_fp4_on_a_model_is_a_copy_with_per_tensor_activations() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 16)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = outlier_inputs(3, tokens=400)
    q = llm_fp4(model, [data[:100], data[100:200]], options=FP4Options(candidates=10, rounds=1), skip=["2"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert isinstance(q[0], QuantLinear) and isinstance(q[2], nn.Linear) and not isinstance(q[2], QuantLinear)
    assert q[0].input_quantizer.params.scale.shape == () and q[0].weight_params.scale.shape == (64,)
    with torch.no_grad():
        exact, got = model(data[200:]), q(data[200:])
    assert float((got - exact).norm() / exact.norm()) < 0.25
    with pytest.raises(ValueError, match="bits=2"):
        FP4Options(bits=2)
    with pytest.raises(ValueError, match="alpha_min"):
        FP4Options(alpha_min=2.0)
    with pytest.raises(ValueError, match="calibration is empty"):
        llm_fp4(model, [])
    with pytest.raises(ValueError, match="matches no quantizable layer"):
        llm_fp4(model, [data], skip=["head"])
