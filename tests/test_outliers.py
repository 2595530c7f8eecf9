"""attnzoo.analysis.outliers: the kurtosis and ∞-norm probes against numpy and explicit computation, the uniform
affine fake quantiser's error bound, the running min-max estimator, and the W8A8 copy of a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnzoo.analysis.outliers import (
    FFNOutlierProbe,
    RunningMinMax,
    affine_parameters,
    fake_quantize,
    kurtosis,
    quantize_w8a8,
    quantize_weight,
)
from attnzoo.models import CausalLanguageModel


def test_kurtosis_matches_numpy_and_is_3_for_a_gaussian() -> None:
    x = torch.randn(5, 4000, dtype=torch.float64)
    x[0, 0] = 40.0  # one outlier: a heavy tail
    a = x.numpy()
    mu = a.mean(1, keepdims=True)
    expected = ((a - mu) ** 4).mean(1) / (a.std(1, ddof=1) ** 4 + 1e-6)
    np.testing.assert_allclose(kurtosis(x).numpy(), expected, rtol=1e-12)
    assert kurtosis(x)[0] > 50 and (kurtosis(x)[1:] - 3).abs().max() < 0.5


def test_probe_records_the_ffn_outputs_and_removes_its_hooks() -> None:
    torch.manual_seed(0)
    model = CausalLanguageModel(vocab_size=11, dim=16, num_layers=2).double()
    tokens = torch.randint(0, 11, (3, 9))
    with FFNOutlierProbe(model) as probe:
        model(tokens)
        model(tokens[:1])
    summary = probe.summary()
    # recompute both calls explicitly
    per_layer_norm, per_layer_kurt = {}, {}
    with torch.no_grad():
        for call in (tokens, tokens[:1]):
            seen = {}
            hs = [b.mlp.register_forward_hook(lambda m, i, o, k=k, seen=seen: seen.__setitem__(k, o.flatten(1)))
                  for k, b in enumerate(model.blocks)]
            model(call)
            for h in hs:
                h.remove()
            for k, flat in seen.items():
                per_layer_norm.setdefault(k, []).extend(flat.abs().amax(1).tolist())
                per_layer_kurt.setdefault(k, []).extend(kurtosis(flat).tolist())
    norms = [np.mean(v) for v in per_layer_norm.values()]
    kurt = [np.mean(v) for v in per_layer_kurt.values()]
    assert summary["max_inf_norm"] == pytest.approx(max(norms), rel=1e-12)
    assert summary["avg_kurtosis"] == pytest.approx(np.mean(kurt), rel=1e-12)
    assert summary["max_kurtosis"] == pytest.approx(max(kurt), rel=1e-12)
    assert not any(b.mlp._forward_hooks for b in model.blocks)


def test_fake_quantize_error_is_at_most_half_a_step_inside_the_range() -> None:
    x = torch.linspace(-3, 5, 10001, dtype=torch.float64)
    scale, zero = affine_parameters(x.min(), x.max(), 8)
    assert scale == pytest.approx(8 / 255)
    q = fake_quantize(x, scale, zero, 8)
    assert (q - x).abs().max() <= scale / 2 + 1e-12
    assert len(torch.unique(q)) <= 256
    assert fake_quantize(torch.zeros(1, dtype=torch.float64), scale, zero, 8).item() == 0  # 0 is exact
    outside = fake_quantize(torch.tensor([-100.0, 100.0], dtype=torch.float64), scale, zero, 8)
    torch.testing.assert_close(outside, torch.stack([-zero * scale, (255 - zero) * scale]))
    w = torch.randn(30, 20, dtype=torch.float64)
    qw = quantize_weight(w, 8)
    step = w.abs().max() / 127
    assert (qw - w).abs().max() <= step / 2 + 1e-12 and len(torch.unique(qw)) <= 255


def test_running_min_max_is_the_official_momentum_update() -> None:
    estimator = RunningMinMax(momentum=0.9)
    estimator.update(torch.tensor([-1.0, 2.0]))
    estimator.update(torch.tensor([-3.0, 1.0]))
    assert estimator.low.item() == pytest.approx(0.1 * -3 + 0.9 * -1)
    assert estimator.high.item() == pytest.approx(0.1 * 1 + 0.9 * 2)


def test_w8a8_copy_is_close_to_float_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = CausalLanguageModel(vocab_size=13, dim=32, num_layers=2)
    tokens = torch.randint(0, 13, (4, 16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        exact = model(tokens)
        calibration = [tokens]  # the ranges of what is evaluated: no clipping, only rounding
        w16 = quantize_w8a8(model, calibration, lambda m, b: m(b), bits=16, skip=lambda n, m: n == "head")(tokens)
        w8 = quantize_w8a8(model, calibration, lambda m, b: m(b), skip=lambda n, m: n == "head")(tokens)
        w4 = quantize_w8a8(model, calibration, lambda m, b: m(b), bits=4, skip=lambda n, m: n == "head")(tokens)
    errors = [(w - exact).abs().max().item() for w in (w16, w8, w4)]
    assert errors[0] < 1e-3 < errors[1] < errors[2]
    assert errors[1] < 0.1 * exact.abs().max().item()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="calibration ran no batch"):
        quantize_w8a8(model, [], lambda m, b: m(b))
