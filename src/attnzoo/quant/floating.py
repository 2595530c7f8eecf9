"""Floating-point quantisation ExMy with a real-valued exponent bias, as LLM-FP4 (Liu et al., "LLM-FP4: 4-Bit
Floating-Point Quantized Transformers", arXiv 2310.16836, Sec. 3; official ``FPMinMaxQuantLinear.get_scale`` of
nbasyl/LLM-FP4 at 0598c95).

One sign bit, ``E`` exponent bits, ``M`` mantissa bits (``E + M = bits − 1``) and a real bias ``b``:

- ``maxval = (2 − 2^−M) · 2^(2^E − 1 − b)``, ``x_c = clamp(x, −maxval, maxval)``,
- ``p = max(⌊log2 |x_c| + b⌋, 1)`` (the floor at 1 is the subnormal range), step ``v = 2^(p − M − b)``,
- ``x̂ = round(x_c / v) · v``.

Here the bias is carried as the scale ``s = 2^−b`` (:class:`~attnzoo.quant.base.QParams`), and ``x̂`` is computed as
``s · Q_0(x / s)`` with ``Q_0`` the format at bias 0, whose exponent ``⌊log2 |y|⌋`` is read exactly with
``torch.frexp`` (the official code takes ``floor(log2(|x|) + b)`` in floating point; the two agree up to floating
rounding at cell boundaries, tested against a transcription of ``get_scale``). Codes are IEEE-style bit patterns
(equal to torch's ``float8_e4m3fn`` / ``float8_e5m2`` bytes wherever those are finite, ``−0`` included)
``sign · 2^(E+M) + e · 2^M + m``: ``e = 0`` holds the subnormals ``m · 2^(1−M)``, ``e ≥ 1`` the normals
``(2^M + m) · 2^(e−M)`` (times ``s``); there is no infinity or NaN code, so E4M3 reaches ``480 · s`` (the OCP
``float8_e4m3fn`` reserves its top code for NaN: 448), while E2M1 with ``maxval = 6`` is exactly OCP FP4:
``{0, 0.5, 1, 1.5, 2, 3, 4, 6}`` and negatives.

``fit`` is the official min-max initialisation ``b₀ = 2^E − log2 max|x| + log2(2 − 2^−M) − 1``, i.e. ``maxval =
max|x|`` (per tensor, per channel, ...), computed as ``s = max|x| / maxval_0``.

Power-of-two commutation (catalog 17, the basis of LLM-FP4's per-channel pre-shifted biases): for an *integer*
``ρ`` and any real ``b``, ``Q_b(2^ρ x) = 2^ρ Q_{b+ρ}(x)`` holds exactly in float64, for every ``x`` (clamp,
exponent and subnormal floor included), when the scale of ``b + ρ`` is ``2^−ρ`` times that of ``b`` — what
:meth:`FloatQuantizer.shift_bias` returns, and what :meth:`FloatQuantizer.params_from_bias` gives whenever
``b + ρ`` is exactly representable (it splits ``b`` into integer and fractional parts). For a non-integer ``ρ`` the
identity holds in exact arithmetic only (``2^ρ x`` is rounded). Tested in ``tests/test_quant_properties.py``,
with the grid, idempotence and half-step error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from attnzoo.quant.base import QParams, Quantizer, check_float_input
from attnzoo.quant.granularity import Granularity
from attnzoo.quant.rounding import Rounding, check_rounding, round_to_integer
from attnzoo.quant.uniform import check_bits
from attnzoo.validation import check_int, check_real

MAX_EXPONENT_BITS = 6
"""``2^(2^6 − 1)`` still fits float32; wider exponents would overflow the bias-0 grid."""


@dataclass(frozen=True)
class FloatQuantizer(Quantizer):
    """Sign + ``exponent_bits`` + ``mantissa_bits`` floating-point quantizer with a real exponent bias (see the
    module docstring).

    Args:
        bits: total bits, 2 to 16.
        exponent_bits: ``E``, 1 to 6.
        mantissa_bits: ``M``; default ``bits − 1 − E``; when given, ``E + M`` must equal ``bits − 1``.
        granularity: which entries share a bias (default per tensor).
        rounding: ``"nearest"`` or ``"stochastic"``.
        min_scale: floor of the scale ``2^−b`` (an all-zero tensor gets it).

    >>> fp4 = FloatQuantizer(4, exponent_bits=2)
    >>> params = fp4.params_from_maxval(torch.tensor(6.0))
    >>> fp4.grid(params)[7:].tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    >>> fp4.quantize(torch.tensor([0.3, 2.6, -5.0, 100.0]), params).tolist()
    [0.5, 3.0, -4.0, 6.0]
    """

    bits: int = 4
    exponent_bits: int = 2
    mantissa_bits: int | None = None
    granularity: Granularity = field(default_factory=Granularity.per_tensor)
    rounding: Rounding = "nearest"
    min_scale: float = 1e-30

    def __post_init__(self) -> None:
        check_bits("bits", self.bits)
        check_int("exponent_bits", self.exponent_bits, 1)
        if self.exponent_bits > MAX_EXPONENT_BITS:
            raise ValueError(f"exponent_bits={self.exponent_bits}: expected 1 to {MAX_EXPONENT_BITS}")
        if self.mantissa_bits is None:
            object.__setattr__(self, "mantissa_bits", self.bits - 1 - self.exponent_bits)
        check_int("mantissa_bits", self.mantissa_bits, 0)
        if self.exponent_bits + self.mantissa_bits != self.bits - 1:
            raise ValueError(f"exponent_bits={self.exponent_bits} + mantissa_bits={self.mantissa_bits} = "
                             f"{self.exponent_bits + self.mantissa_bits}: expected bits - 1 = {self.bits - 1} "
                             f"(bits={self.bits} with one sign bit)")
        if not isinstance(self.granularity, Granularity):
            raise TypeError(f"granularity={self.granularity!r}: expected a Granularity")
        check_rounding(self.rounding)
        check_real("min_scale", self.min_scale)

    @classmethod
    def from_format(cls, name: str, **kwargs: object) -> FloatQuantizer:
        """``"e2m1"``, ``"E4M3"``, ... (``bits = 1 + E + M``)."""
        parts = name.lower().removeprefix("e").split("m")
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or not name.lower().startswith("e"):
            raise ValueError(f"format {name!r}: expected 'e<E>m<M>', e.g. 'e2m1'")
        e, m = int(parts[0]), int(parts[1])
        return cls(bits=1 + e + m, exponent_bits=e, mantissa_bits=m, **kwargs)  # type: ignore[arg-type]

    @property
    def format(self) -> str:
        return f"E{self.exponent_bits}M{self.mantissa_bits}"

    @property
    def maxval_at_zero_bias(self) -> float:
        """``(2 − 2^−M) · 2^(2^E − 1)``, the largest magnitude at ``b = 0``."""
        return (2 - 2.0 ** -self.mantissa_bits) * 2.0 ** (2 ** self.exponent_bits - 1)

    @property
    def code_min(self) -> int:
        return 0

    @property
    def code_max(self) -> int:
        return 2 ** self.bits - 1

    # parameterisations of the scale s = 2^-b
    def params_from_maxval(self, maxval: torch.Tensor) -> QParams:
        """The scale that makes the largest magnitude ``maxval``."""
        return QParams(torch.clamp(maxval / self.maxval_at_zero_bias, min=self.min_scale))

    def params_from_bias(self, bias: torch.Tensor | float) -> QParams:
        """``s = 2^−b``, computed as ``2^−frac(b) · 2^−⌊b⌋`` (exact power-of-two shifts of ``b``)."""
        bias = torch.as_tensor(bias, dtype=torch.float64 if not torch.is_tensor(bias) else None)
        whole = torch.floor(bias)
        return QParams(torch.ldexp(torch.exp2(-(bias - whole)), -whole))

    @staticmethod
    def bias(params: QParams) -> torch.Tensor:
        """``b = −log2 s``."""
        return -torch.log2(params.scale)

    def maxval(self, params: QParams) -> torch.Tensor:
        return params.scale * self.maxval_at_zero_bias

    @staticmethod
    def shift_bias(params: QParams, rho: int) -> QParams:
        """The parameters of bias ``b + ρ`` (integer ``ρ``): ``s · 2^−ρ``, exactly."""
        check_int("rho", rho, minimum=-(2 ** 30))
        return QParams(torch.ldexp(params.scale, torch.tensor(-float(rho), dtype=params.scale.dtype)))

    def fit(self, x: torch.Tensor) -> QParams:
        check_float_input(x)
        return self.params_from_maxval(self.granularity.reduce(x.detach().abs(), torch.amax))

    def params_from_range(self, low: torch.Tensor, high: torch.Tensor) -> QParams:
        return self.params_from_maxval(torch.maximum(low.abs(), high.abs()))

    # the grid at bias 0, in units of s
    def _code_of_magnitude(self, mag: torch.Tensor) -> torch.Tensor:
        m_bits = self.mantissa_bits
        exponent = torch.clamp(torch.frexp(mag).exponent - 1, min=1).to(mag.dtype)  # ⌊log2 mag⌋, floored at 1
        normal = mag >= 2
        mantissa = torch.where(normal, torch.ldexp(mag, m_bits - exponent) - 2 ** m_bits,
                               torch.ldexp(mag, torch.tensor(m_bits - 1.0, dtype=mag.dtype)))
        return torch.where(normal, exponent, 0) * 2 ** m_bits + mantissa

    def _codes(self, v: torch.Tensor, params: QParams, generator: torch.Generator | None) -> torch.Tensor:
        top = self.maxval_at_zero_bias
        y = torch.clamp(v / params.scale, -top, top)
        a = y.abs()
        exponent = torch.clamp(torch.frexp(a).exponent - 1, min=1).to(a.dtype)
        units = round_to_integer(torch.ldexp(a, self.mantissa_bits - exponent), self.rounding, generator)
        mag = torch.ldexp(units, exponent - self.mantissa_bits)
        sign = torch.signbit(y).to(a.dtype)  # IEEE: what rounds to zero from below is −0 (code 2^(bits−1))
        return sign * 2 ** (self.bits - 1) + self._code_of_magnitude(mag)

    def _values(self, codes: torch.Tensor, params: QParams) -> torch.Tensor:
        m_bits, half = self.mantissa_bits, 2 ** (self.bits - 1)
        negative = codes >= half
        rest = codes - negative * half
        exponent = torch.floor(rest / 2 ** m_bits)
        mantissa = rest - exponent * 2 ** m_bits
        mag = torch.where(exponent == 0, torch.ldexp(mantissa, torch.tensor(1.0 - m_bits, dtype=codes.dtype)),
                          torch.ldexp(mantissa + 2 ** m_bits, exponent - m_bits))
        return torch.where(negative, -mag, mag) * params.scale

    def _clip_range(self, params: QParams) -> tuple[torch.Tensor, torch.Tensor]:
        top = params.scale * self.maxval_at_zero_bias
        return -top, top

    def grid(self, params: QParams | None = None) -> torch.Tensor:
        """The sorted distinct representable values (float64), ``2^bits − 1`` of them (``±0`` coincide), for
        a per-tensor ``params`` (default: bias 0)."""
        scale = torch.ones((), dtype=torch.float64) if params is None else params.scale.double()
        if scale.numel() != 1:
            raise ValueError(f"grid() needs one scale, got params of shape {tuple(scale.shape)}")
        codes = torch.arange(2 ** self.bits, dtype=torch.float64)
        return torch.unique(self._values(codes, QParams(scale.reshape(()))))


def fp_bias_from_max(maxval: float, exponent_bits: int, mantissa_bits: int) -> float:
    """The official initial bias ``b₀ = 2^E − log2(maxval) + log2(2 − 2^−M) − 1`` (``maxval`` becomes the
    largest magnitude)."""
    return 2 ** exponent_bits - math.log2(maxval) + math.log2(2 - 2 ** -mantissa_bits) - 1
