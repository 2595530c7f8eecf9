"""Property tests of every attnzoo.quant format (catalog 17 / 25 / 36 and the cross-cutting quantizer notes):
idempotence, grid membership, error at most half a step inside the range, the power-of-two commutation
Q_b(2^ρ x) = 2^ρ Q_{b+ρ}(x) exactly in float64, and unbiased stochastic rounding."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnzoo.quant import FloatQuantizer, Granularity, QParams, QuantizedTensor, TernaryQuantizer, UniformQuantizer

FP_FORMATS = [(4, 2), (4, 1), (4, 3), (8, 4), (8, 5), (6, 3), (3, 1), (2, 1)]
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
GRANULARITIES = [Granularity.per_tensor(), Granularity.per_channel(0), Granularity.per_channel(-1),
                 Granularity.per_row(), Granularity.per_group(4)]

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False, width=64)
away_from_zero = st.builds(lambda m, negative: -m if negative else m, st.floats(1, 1e4), st.booleans())


def tensors(elements: st.SearchStrategy[float] = finite) -> st.SearchStrategy[torch.Tensor]:
    """Float64 tensors of shape (rows, 8), so that every granularity of GRANULARITIES applies."""
    return st.lists(elements, min_size=8, max_size=64).map(
        lambda v: torch.tensor(v[: len(v) // 8 * 8], dtype=torch.float64).reshape(-1, 8))


def quantizers() -> st.SearchStrategy:
    uniform = st.builds(UniformQuantizer, bits=st.integers(2, 16), symmetric=st.booleans(),
                        granularity=st.sampled_from(GRANULARITIES))
    floating = st.builds(lambda f, g: FloatQuantizer(f[0], exponent_bits=f[1], granularity=g),
                         st.sampled_from(FP_FORMATS), st.sampled_from(GRANULARITIES))
    ternary = st.builds(TernaryQuantizer, measure=st.sampled_from(["absmean", "absmedian"]),
                        granularity=st.sampled_from(GRANULARITIES))
    return st.one_of(uniform, floating, ternary)


@settings(max_examples=60, deadline=None)
@given(quantizers(), tensors())
def test_quantization_is_idempotent_for_fixed_parameters(q, x) -> None:
    params = q.fit(x)
    once = q.quantize(x, params)
    assert torch.equal(q.quantize(once, params), once)
    assert torch.equal(q.encode(once, params).codes, q.encode(x, params).codes)
    assert torch.equal(q.decode(q.encode(x, params)), once)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False, width=64), min_size=1, max_size=200))
def test_e2m1_at_maxval_6_lands_on_the_fp4_grid(values) -> None:
    q = FloatQuantizer(4, exponent_bits=2)
    params = q.params_from_maxval(torch.tensor(6.0, dtype=torch.float64))
    assert q.grid(params).tolist() == [-v for v in E2M1[:0:-1]] + E2M1
    out = q.quantize(torch.tensor(values, dtype=torch.float64), params)
    assert set(out.abs().tolist()) <= set(E2M1)
    # the nearest grid point, clipped at ±6, with the sign of x
    grid = torch.tensor(E2M1, dtype=torch.float64)
    target = torch.tensor(values, dtype=torch.float64).clamp(-6, 6)
    assert ((out - target).abs() <= (target.abs()[:, None] - grid).abs().min(1).values).all()
    assert (out * target >= 0).all()


@pytest.mark.parametrize("bits, e", FP_FORMATS)
def test_every_fp_format_has_2_to_the_bits_minus_one_values_and_quantizes_onto_them(bits, e) -> None:
    q = FloatQuantizer(bits, exponent_bits=e)
    params = q.params_from_bias(0.37)
    grid = q.grid(params)
    assert grid.numel() == 2 ** bits - 1 and torch.equal(grid, -grid.flip(0))
    x = torch.randn(2000, dtype=torch.float64) * float(q.maxval(params)) / 2
    out = q.quantize(x, params)
    assert torch.isin(out, grid).all()


@settings(max_examples=60, deadline=None)
@given(quantizers(), tensors())
def test_error_is_at_most_half_a_step_inside_the_range(q, x) -> None:
    params = q.fit(x)
    out = q.quantize(x, params)
    low, high = q.clip_range(x, params)
    inside = (x >= low) & (x <= high)
    if isinstance(q, FloatQuantizer):
        b = q.broadcast_params(params, x)
        y = (q.granularity.view(x) / b.scale).abs()
        p = torch.clamp(torch.floor(torch.log2(y)), min=1)
        step = (torch.exp2(p - q.mantissa_bits) * b.scale).expand_as(y).reshape(x.shape)
    else:
        step = q.broadcast_params(params, x).scale.expand_as(q.granularity.view(x)).reshape(x.shape)
    assert ((out - x).abs() <= step / 2 * (1 + 1e-9))[inside].all()
    assert ((out >= low) & (out <= high)).all()


@settings(max_examples=60, deadline=None)
@given(tensors(), st.integers(-20, 20), st.sampled_from(FP_FORMATS), st.integers(-4000, 4000))
def test_fp_power_of_two_commutation_is_exact_in_float64(x, rho, fmt, bias_units) -> None:
    """Q_b(2^ρ x) = 2^ρ Q_{b+ρ}(x) bit for bit, integer ρ, for every x (clamp and subnormal floor included):
    with b + ρ computed exactly (b a multiple of 2^-10) through params_from_bias, and for any b via shift_bias."""
    q = FloatQuantizer(fmt[0], exponent_bits=fmt[1])
    b = bias_units / 1024
    lhs = q.quantize(x * 2.0 ** rho, q.params_from_bias(b))
    assert torch.equal(lhs, 2.0 ** rho * q.quantize(x, q.params_from_bias(b + rho)))
    params = q.params_from_bias(b + 1e-7 * math.pi)  # an arbitrary real bias
    assert torch.equal(q.quantize(x * 2.0 ** rho, params), 2.0 ** rho * q.quantize(x, q.shift_bias(params, rho)))


@settings(max_examples=60, deadline=None)
@given(quantizers(), tensors(away_from_zero), st.integers(-16, 20))
def test_fitted_quantizers_commute_with_powers_of_two(q, x, rho) -> None:
    """Q(2^ρ x) = 2^ρ Q(x) with parameters fitted to each input (min-max, absmax, absmean, absmedian: every
    statistic scales exactly); for the uniform grid this is the law with the step 2^-ρ Δ in place of 2^-b.
    Entries of magnitude >= 1 and ρ >= -16 keep every group's scale clear of the floors (min_scale, and the
    ternary eps 1e-5 < 2^-16), which break it (next test)."""
    assert torch.equal(q.quantize(x * 2.0 ** rho), 2.0 ** rho * q.quantize(x))


def test_the_ternary_eps_floor_breaks_the_commutation() -> None:
    """Below the floor the scale is eps, not 2^ρ times the statistic: the law's precondition is needed."""
    q, x = TernaryQuantizer(), torch.ones(1, 8, dtype=torch.float64)
    assert q.eps > 2.0 ** -17
    assert torch.equal(q.quantize(x), x)
    assert not torch.equal(q.quantize(x * 2.0 ** -17), 2.0 ** -17 * q.quantize(x))


def test_the_law_is_not_about_bit_widths() -> None:
    """With b read as the bit width the identity fails: the grids of b and b + ρ bits are not 2^ρ apart."""
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    assert not torch.equal(UniformQuantizer(4).quantize(2 * x), 2 * UniformQuantizer(5).quantize(x))


def _grid(q, params: QParams) -> torch.Tensor:
    codes = torch.arange(q.code_min, q.code_max + 1, dtype=torch.int32)
    return torch.unique(q.decode(QuantizedTensor(codes, params, q)))


@pytest.mark.parametrize("q", [UniformQuantizer(4, symmetric=False, rounding="stochastic"),
                               UniformQuantizer(3, rounding="stochastic"),
                               FloatQuantizer(4, exponent_bits=2, rounding="stochastic"),
                               FloatQuantizer(8, exponent_bits=4, rounding="stochastic"),
                               TernaryQuantizer("absmedian", rounding="stochastic")],
                         ids=["u4-asym", "u3-sym", "e2m1", "e4m3", "ternary"])
def test_stochastic_rounding_is_unbiased(q) -> None:
    """Mean of 4000 draws within 5 standard errors of x for every entry; the standard error of each entry is
    step · sqrt(f (1 − f) / n) with f its position between the two neighbouring grid points."""
    x = torch.linspace(-1, 1, 41, dtype=torch.float64) * 0.9  # inside every range fitted to [-1, 1]
    params = q.fit(torch.tensor([-1.0, 1.0], dtype=torch.float64))
    draws = 4000
    g = torch.Generator().manual_seed(0)
    samples = torch.stack([q.quantize(x, params, generator=g) for _ in range(draws)])
    grid = _grid(q, params)
    low = torch.stack([grid[grid <= v].max() for v in x])
    high = torch.stack([grid[grid >= v].min() for v in x])
    assert ((samples == low) | (samples == high)).all()  # only the two neighbours are drawn
    mean = samples.mean(0)
    f = torch.where(high > low, (x - low) / (high - low), torch.zeros_like(x))
    se = (high - low) * torch.sqrt(f * (1 - f) / draws)
    assert ((mean - x).abs() <= 5 * se + 1e-12).all()
    # and rounding to nearest is biased on the same points (the test can tell)
    assert (replace(q, rounding="nearest").quantize(x, params) - x).abs().max() > 10 * se.max()
