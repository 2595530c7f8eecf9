"""attnzoo.quant's formats against their anchors: torch's own fake quantisation and float8 casts, the official
LLM-FP4 ``get_scale`` (nbasyl/LLM-FP4 at 0598c95) and the BitNet Reloaded authors' ``round_clamp`` / measures
(schneiderkamplab/bitlinear at 7b66f06), transcribed; granularities; and every bad argument."""

from __future__ import annotations

import math

import pytest
import torch

from attnzoo.quant import FloatQuantizer, Granularity, QParams, TernaryQuantizer, UniformQuantizer
from attnzoo.quant.floating import fp_bias_from_max
from attnzoo.registry import NotSupportedError
from attnzoo.validation import ArgumentTypeError


# ---------------------------------------------------------------- uniform
def test_uniform_matches_torch_fake_quantize_per_tensor_and_per_channel() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 32) * 3
    q = UniformQuantizer(8, symmetric=False)
    params = q.fit(x)
    ours = q.quantize(x, params)
    theirs = torch.fake_quantize_per_tensor_affine(x, params.scale, params.zero_point.int(), 0, 255)
    # torch rounds x * (1 / Δ) + z, we round x / Δ and add z: the same level but where the two differ by 1 ulp
    assert (ours == theirs).float().mean() > 0.999 and (ours - theirs).abs().max() <= params.scale * 1.0001
    qc = UniformQuantizer(4, symmetric=True, granularity=Granularity.per_channel(0))
    pc = qc.fit(x)
    assert pc.scale.shape == (64,)
    theirs = torch.fake_quantize_per_channel_affine(x, pc.scale, torch.zeros(64, dtype=torch.int32), 0, -7, 7)
    assert (qc.quantize(x, pc) == theirs).float().mean() > 0.999


def test_uniform_levels_zero_and_codes() -> None:
    x = torch.linspace(-3, 5, 10001, dtype=torch.float64)
    q = UniformQuantizer(3, symmetric=False)
    encoded = q.encode(x)
    assert encoded.codes.dtype == torch.int32 and encoded.codes.min() == 0 and encoded.codes.max() == 7
    assert torch.unique(q.quantize(x)).numel() == 8
    assert q.quantize(torch.zeros(1, dtype=torch.float64), encoded.params).item() == 0
    sym = UniformQuantizer(3)
    assert torch.unique(sym.encode(x * 5 / 3 - 5 / 3).codes).tolist() == [-3, -2, -1, 0, 1, 2, 3]


@pytest.mark.parametrize("granularity, shape", [(Granularity.per_row(), (6,)), (Granularity.per_group(4), (6, 3)),
                                                (Granularity.per_channel(1), (12,)), (Granularity.per_tensor(), ())])
def test_granularity_shares_parameters_as_documented(granularity, shape) -> None:
    torch.manual_seed(1)
    w = torch.randn(6, 12, dtype=torch.float64)
    q = UniformQuantizer(4, granularity=granularity)
    params = q.fit(w)
    assert tuple(params.scale.shape) == shape
    # the same as quantizing each parameter group on its own per tensor
    per_tensor = UniformQuantizer(4)
    expected = torch.empty_like(w)
    if granularity.kind == "group":
        for r in range(6):
            for g in range(3):
                expected[r, 4 * g:4 * g + 4] = per_tensor.quantize(w[r, 4 * g:4 * g + 4])
    elif granularity.kind == "row":
        expected = torch.stack([per_tensor.quantize(row) for row in w])
    elif granularity.kind == "channel":
        expected = torch.stack([per_tensor.quantize(col) for col in w.T], 1)
    else:
        expected = per_tensor.quantize(w)
    assert torch.equal(q.quantize(w), expected)


def test_half_precision_inputs_quantize_in_float32_and_keep_their_dtype() -> None:
    x = torch.randn(8, 16).to(torch.bfloat16)
    q = UniformQuantizer(12, symmetric=False)
    out = q.quantize(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, q.quantize(x.float()).to(torch.bfloat16))


# ---------------------------------------------------------------- floating point
def official_get_scale(x: torch.Tensor, bits: int, mantissa_bit: int, bias: torch.Tensor):
    """nbasyl/LLM-FP4 quant_layers/fp_linear.py, FPMinMaxQuantLinear.get_scale, verbatim but for the names."""
    M = mantissa_bit
    E = bits - 1 - M
    maxval = (2 - 2 ** (-M)) * 2 ** (2**E - 1 - bias)
    minval = -maxval
    x = torch.min(torch.max(x, minval), maxval)
    log_scales = torch.clamp((torch.floor(torch.log2(torch.abs(x)) + bias)).detach(), 1.0)
    return x, 2.0 ** (log_scales - M - bias.float())


@pytest.mark.parametrize("bits, e", [(4, 2), (4, 1), (4, 3), (8, 4), (6, 2)])
def test_fp_matches_the_official_llm_fp4_quantizer(bits, e) -> None:
    torch.manual_seed(bits * 10 + e)
    q = FloatQuantizer(bits, exponent_bits=e)
    for trial in range(5):
        x = torch.randn(4000, dtype=torch.float64) * 10 ** (trial - 2)
        # the official step casts the bias to float32 (``bias.float()``): take one float32 represents
        bias = torch.tensor(fp_bias_from_max(float(x.abs().max()), e, bits - 1 - e) + 0.37 * trial,
                            dtype=torch.float32).double()
        xc, step = official_get_scale(x, bits, bits - 1 - e, bias)
        official = torch.round(xc / step) * step
        ours = q.quantize(x, q.params_from_bias(bias))
        # the official exponent is floor(log2|x| + b) in floating point: equal but at rare cell boundaries
        assert (ours == official).float().mean() > 0.999
        torch.testing.assert_close(ours, official, rtol=1e-12, atol=float(step.max()))


def test_fp_min_max_initialisation_is_the_official_b0() -> None:
    x = torch.randn(100, dtype=torch.float64) * 7
    q = FloatQuantizer(4, exponent_bits=2)
    b0 = fp_bias_from_max(float(x.abs().max()), 2, 1)
    assert float(q.bias(q.fit(x))) == pytest.approx(b0, rel=1e-13)
    assert float(q.maxval(q.fit(x))) == pytest.approx(float(x.abs().max()), rel=1e-15)
    assert q.quantize(x).abs().max() == x.abs().max()


def test_e2m1_codes_are_the_ocp_fp4_bit_patterns() -> None:
    q = FloatQuantizer.from_format("e2m1")
    params = q.params_from_maxval(torch.tensor(6.0))
    values = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    from attnzoo.quant import QuantizedTensor
    decoded = q.decode(QuantizedTensor(torch.arange(16, dtype=torch.int32), params, q))
    assert decoded.tolist() == values + [-v for v in values]
    assert q.encode(torch.tensor(values + [-v for v in values]), params).codes.tolist() == list(range(16))


@pytest.mark.parametrize("fmt, dtype, bias, top", [("e4m3", torch.float8_e4m3fn, 7, 448.0),
                                                   ("e5m2", torch.float8_e5m2, 15, 57344.0)])
def test_fp8_equals_torch_float8_casts_on_their_finite_range(fmt, dtype, bias, top) -> None:
    """torch's float8 formats at their integer biases: same values and the same bit patterns wherever torch's
    value is finite (E4M3FN's top code is NaN, E5M2's top exponent inf / NaN; ours keep those as numbers)."""
    q = FloatQuantizer.from_format(fmt)
    params = q.params_from_bias(float(bias))
    torch.manual_seed(0)
    x = torch.cat([torch.randn(20000) * s for s in (1e-3, 0.1, 10, top / 4)]).clamp(-top, top)
    x = torch.cat([x, torch.tensor([0.0, top, -top, 2.0 ** (-bias - q.mantissa_bits + 1)])])
    theirs = x.to(dtype)
    assert torch.equal(q.quantize(x, params), theirs.float())
    assert torch.equal(q.encode(x, params).codes, theirs.view(torch.uint8).int())


def test_fp_per_channel_biases_fold_into_the_weights_as_powers_of_two() -> None:
    """Catalog 17, test 4: per-channel activation biases b̃ + ρ_j equal a per-tensor quantizer on x · 2^ρ with
    the weight columns scaled by 2^-ρ, exactly (float64)."""
    torch.manual_seed(2)
    q = FloatQuantizer(4, exponent_bits=2)
    x = torch.randn(16, 6, dtype=torch.float64) * torch.tensor([0.1, 1, 3, 20, 0.5, 7], dtype=torch.float64)
    w = torch.randn(5, 6, dtype=torch.float64)
    tensor_bias = q.bias(q.fit(x))
    rho = torch.tensor([3, 0, -1, -4, 1, -2])
    per_channel = FloatQuantizer(4, exponent_bits=2, granularity=Granularity.per_channel(-1))
    channel_params = QParams(torch.ldexp(q.params_from_bias(tensor_bias).scale.expand(6), -rho.double()))
    lhs = per_channel.quantize(x, channel_params) @ w.T
    rhs = q.quantize(x * torch.exp2(rho.double()), q.params_from_bias(tensor_bias)) @ (w * torch.exp2(-rho.double())).T
    assert torch.equal(lhs, rhs)


# ---------------------------------------------------------------- ternary
def official_round_clamp(input, range, lambda_=1):
    return lambda_ * (input.round().clamp(range[0], range[1]) - input).detach() + input


def official_scale(input, range, measure, keepdim, eps):
    return max(abs(k) for k in range) / measure(input.detach(), keepdim=keepdim).clamp_(min=eps)


def official_abs_mean(input, keepdim):
    return input.abs().mean(dim=-1, keepdim=keepdim) if keepdim else input.abs().mean()


def official_abs_median(input, keepdim):
    return input.abs().median(dim=-1, keepdim=keepdim).values if keepdim else input.abs().median()


@pytest.mark.parametrize("measure, official", [("absmean", official_abs_mean), ("absmedian", official_abs_median)])
def test_ternary_equals_the_bitnet_reloaded_code(measure, official) -> None:
    torch.manual_seed(3)
    w = torch.randn(32, 48) * 0.05
    w_scale = official_scale(w, (-1, 1), official, False, 1e-5)
    w_quant = official_round_clamp(w * w_scale, (-1, 1))
    q = TernaryQuantizer(measure)
    encoded = q.encode(w)
    assert torch.equal(encoded.codes.float(), w_quant)
    assert set(encoded.codes.unique().tolist()) <= {-1, 0, 1}
    assert torch.equal(q.quantize(w), w_quant / w_scale)  # the official y / (w_scale · x_scale), weight side


def test_absmedian_is_robust_to_one_huge_weight_and_absmean_is_not() -> None:
    torch.manual_seed(4)
    w = torch.randn(64, 64)
    spoiled = w.clone()
    spoiled[0, 0] = 1e4
    mean, median = TernaryQuantizer("absmean"), TernaryQuantizer("absmedian")
    assert float(median.fit(spoiled).scale / median.fit(w).scale) == pytest.approx(1, abs=1e-3)
    assert float(mean.fit(spoiled).scale / mean.fit(w).scale) > 2
    assert (mean.encode(spoiled).codes == 0).float().mean() > 0.85  # nearly every weight zeroed
    assert (median.encode(spoiled).codes == 0).float().mean() < 0.5


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, error, words", [
    (lambda: UniformQuantizer(1), ValueError, "bits=1: expected an int from 2 to 16"),
    (lambda: UniformQuantizer(17), ValueError, "bits=17"),
    (lambda: UniformQuantizer(4.0), ArgumentTypeError, "bits=4.0"),
    (lambda: UniformQuantizer(True), ArgumentTypeError, "bits=True"),
    (lambda: UniformQuantizer(8, symmetric=1), ArgumentTypeError, "symmetric=1"),
    (lambda: UniformQuantizer(8, rounding="up"), ValueError, "rounding='up'"),
    (lambda: UniformQuantizer(8, granularity="row"), TypeError, "granularity='row'"),
    (lambda: FloatQuantizer(4, exponent_bits=2, mantissa_bits=2), ValueError,
     "exponent_bits=2 + mantissa_bits=2 = 4: expected bits - 1 = 3"),
    (lambda: FloatQuantizer(4, exponent_bits=4), ValueError, "mantissa_bits=-1"),
    (lambda: FloatQuantizer(16, exponent_bits=7), ValueError, "exponent_bits=7: expected 1 to 6"),
    (lambda: FloatQuantizer(4, exponent_bits=0), ValueError, "exponent_bits=0"),
    (lambda: FloatQuantizer.from_format("fp4"), ValueError, "format 'fp4'"),
    (lambda: TernaryQuantizer("absmax"), ValueError, "measure='absmax'"),
    (lambda: Granularity.per_group(0), ValueError, "group_size=0"),
    (lambda: Granularity("channel", group_size=4), ValueError, "group_size=4 with kind='channel'"),
    (lambda: Granularity("block"), ValueError, "kind='block'"),
])
def test_bad_arguments_name_the_argument_value_and_expectation(make, error, words) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(").replace("+", r"\+")):
        make()


def test_bad_tensors_and_parameters() -> None:
    w = torch.randn(6, 10)
    with pytest.raises(ValueError, match=r"group_size=4 does not divide the last axis .* \(6, 10\).*divisor of 10"):
        UniformQuantizer(4, granularity=Granularity.per_group(4)).fit(w)
    with pytest.raises(ValueError, match="per-channel axis=2 is out of range"):
        UniformQuantizer(4, granularity=Granularity.per_channel(2)).fit(w)
    with pytest.raises(ValueError, match=r"scale has shape \(5,\); expected \(6,\)"):
        UniformQuantizer(4, granularity=Granularity.per_row()).quantize(w, QParams(torch.ones(5)))
    with pytest.raises(ValueError, match="symmetric UniformQuantizer expects no zero point"):
        UniformQuantizer(4).quantize(w, QParams(torch.ones(()), torch.zeros(())))
    with pytest.raises(TypeError, match="x.dtype=torch.int64"):
        UniformQuantizer(4).quantize(torch.arange(4))
    with pytest.raises(NotSupportedError, match="TernaryQuantizer has no range parameterisation"):
        TernaryQuantizer().params_from_range(torch.tensor(-1.0), torch.tensor(1.0))
    assert math.isclose(TernaryQuantizer().bits, 1.585, rel_tol=1e-3)
