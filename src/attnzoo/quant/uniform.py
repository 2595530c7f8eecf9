"""Uniform integer quantisation, symmetric or asymmetric (affine), any bit width from 2 to 16.

- Asymmetric (affine), codes ``0 … 2^b − 1``: over a range ``[low, high]`` widened to include 0 (so 0 is exact),
  ``Δ = max((high − low) / (2^b − 1), min_scale)``, zero point ``z = round(−low / Δ)``;
  ``code = clamp(round(x / Δ) + z, 0, 2^b − 1)``, ``x̂ = Δ · (code − z)``.
- Symmetric, codes ``−(2^(b−1) − 1) … 2^(b−1) − 1`` (the restricted range, symmetric about 0):
  ``Δ = max(max |x| / (2^(b−1) − 1), min_scale)``, ``code = clamp(round(x / Δ), …)``, ``x̂ = Δ · code``.

``fit`` takes the range from the data (min-max; absmax when symmetric), ``params_from_range`` from an observer.
These are the formulas of the W8A8 evaluation of Bondarenko et al. (arXiv 2306.12929; the official
``AsymmetricUniformQuantizer`` of Qualcomm-AI-research/outlier-free-transformers at 1e59744 rounds the same way)
and of :mod:`attnzoo.analysis.outliers`, which now calls this module (bit for bit as before, tested).

Verified (``tests/test_quant_uniform.py``, ``tests/test_quant_properties.py``): error ``≤ Δ / 2`` inside the
range, idempotence, at most ``2^b`` levels, 0 exact, values against ``torch.fake_quantize_per_tensor_affine`` /
``per_channel_affine``, and the power-of-two law ``Q_Δ(2^ρ x) = 2^ρ Q_{2^−ρ Δ}(x)`` exactly in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attnzoo.quant.base import QParams, Quantizer, check_float_input
from attnzoo.quant.granularity import Granularity
from attnzoo.quant.rounding import Rounding, check_rounding, round_to_integer
from attnzoo.validation import check_flag, check_int, check_real

MIN_BITS, MAX_BITS = 2, 16


def check_bits(name: str, bits: int) -> int:
    """``bits`` is an int in ``[2, 16]``."""
    check_int(name, bits, 1)
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{name}={bits}: expected an int from {MIN_BITS} to {MAX_BITS}")
    return bits


@dataclass(frozen=True)
class UniformQuantizer(Quantizer):
    """Uniform integer quantizer (see the module docstring).

    Args:
        bits: bit width, 2 to 16.
        symmetric: symmetric restricted-range grid (no zero point) or asymmetric affine grid.
        granularity: which entries share a scale (default per tensor).
        rounding: ``"nearest"`` or ``"stochastic"`` (unbiased).
        min_scale: the floor of ``Δ`` (an all-zero tensor gets ``Δ = min_scale``).

    >>> q = UniformQuantizer(8, symmetric=False)
    >>> x = torch.tensor([-1.0, 0.0, 0.5, 2.0])
    >>> q.encode(x).codes.tolist()  # 0.5 / Δ = 42.5 + 85: ties round to even
    [0, 85, 127, 255]
    >>> (q.quantize(x) - x).abs().max().item() <= 3 / 255 / 2
    True
    """

    bits: int = 8
    symmetric: bool = True
    granularity: Granularity = field(default_factory=Granularity.per_tensor)
    rounding: Rounding = "nearest"
    min_scale: float = 1e-12

    def __post_init__(self) -> None:
        check_bits("bits", self.bits)
        check_flag("symmetric", self.symmetric)
        if not isinstance(self.granularity, Granularity):
            raise TypeError(f"granularity={self.granularity!r}: expected a Granularity")
        check_rounding(self.rounding)
        check_real("min_scale", self.min_scale)

    @property
    def code_min(self) -> int:
        return -(2 ** (self.bits - 1) - 1) if self.symmetric else 0

    @property
    def code_max(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2 ** self.bits - 1

    def fit(self, x: torch.Tensor) -> QParams:
        check_float_input(x)
        if self.symmetric:
            absmax = self.granularity.reduce(x.detach().abs(), torch.amax)
            return QParams(torch.clamp(absmax / self.code_max, min=self.min_scale))
        g = self.granularity
        return self.params_from_range(g.reduce(x.detach(), torch.amin), g.reduce(x.detach(), torch.amax))

    def params_from_range(self, low: torch.Tensor, high: torch.Tensor) -> QParams:
        if self.symmetric:
            return QParams(torch.clamp(torch.maximum(low.abs(), high.abs()) / self.code_max, min=self.min_scale))
        low, high = torch.clamp(low, max=0), torch.clamp(high, min=0)
        scale = torch.clamp((high - low) / self.code_max, min=self.min_scale)
        return QParams(scale, torch.round(-low / scale))

    def _codes(self, v: torch.Tensor, params: QParams, generator: torch.Generator | None) -> torch.Tensor:
        q = round_to_integer(v / params.scale, self.rounding, generator)
        if params.zero_point is not None:
            q = q + params.zero_point
        return torch.clamp(q, self.code_min, self.code_max)

    def _unclamped(self, v: torch.Tensor, params: QParams) -> torch.Tensor:
        q = torch.round(v / params.scale)
        return q if params.zero_point is None else q + params.zero_point

    def _passes_gradient(self, v: torch.Tensor, params: QParams) -> torch.Tensor:
        """Where the rounded code is not clamped: the gradient of ``torch.fake_quantize_per_*_affine`` and of the
        Qualcomm ``round_ste`` + clamp (half a step beyond the range still passes)."""
        q = self._unclamped(v, params)
        return (q >= self.code_min) & (q <= self.code_max)

    def _values(self, codes: torch.Tensor, params: QParams) -> torch.Tensor:
        return params.scale * (codes if params.zero_point is None else codes - params.zero_point)

    def _clip_range(self, params: QParams) -> tuple[torch.Tensor, torch.Tensor]:
        zero = 0 if params.zero_point is None else params.zero_point
        return params.scale * (self.code_min - zero), params.scale * (self.code_max - zero)

    def broadcast_params(self, params: QParams, x: torch.Tensor) -> QParams:
        if (params.zero_point is None) != self.symmetric:
            raise ValueError(f"params.zero_point is {'set' if params.zero_point is not None else 'None'}: a "
                             f"{'symmetric' if self.symmetric else 'asymmetric'} UniformQuantizer expects "
                             f"{'no' if self.symmetric else 'a'} zero point")
        return super().broadcast_params(params, x)
