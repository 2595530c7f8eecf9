"""Ternary (1.58-bit) quantisation with an absmean or absmedian scale: BitNet b1.58 (Ma et al., "The Era of 1-bit
LLMs: All Large Language Models are in 1.58 Bits", arXiv 2402.17764, Eq. 1-3) and BitNet b1.58 Reloaded
(Nielsen & Schneider-Kamp, arXiv 2407.09527; the authors' ``bitlinear/bitlinear.py`` and ``measures.py`` of
schneiderkamplab/bitlinear at 7b66f06).

    γ = max(mean |W|, eps)  ("absmean", b1.58)   or   γ = max(median |W|, eps)  ("absmedian", Reloaded)
    code = clamp(round(W · (1/γ)), −1, 1) ∈ {−1, 0, 1},   Ŵ = code / (1/γ)

as the authors' code computes it (``w_scale = 1 / clamp(measure, eps)``, ``eps = 1e-5``; ``torch.median`` is the
lower median for an even count). The b1.58 paper writes ``W / (γ + ε)``; the clamp differs from it only by
``ε / γ``. Stochastic rounding draws ``±1`` with probability ``|W| / γ`` inside ``[−γ, γ]`` — the distribution of
the authors' ``sample`` strategy (``sign(W) · [|W|/γ ≥ u]``), unbiased there.

Verified (``tests/test_quant_ternary.py``): codes and values against the authors' ``round_clamp`` with both
measures, the median's robustness to one huge weight (the mean's lack of it), and idempotence / scale
equivariance (``tests/test_quant_properties.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from attnzoo.quant.base import QParams, Quantizer, check_float_input
from attnzoo.quant.granularity import Granularity
from attnzoo.quant.rounding import Rounding, check_rounding, round_to_integer
from attnzoo.validation import check_real

Measure = Literal["absmean", "absmedian"]
MEASURES: tuple[Measure, ...] = ("absmean", "absmedian")


def _median(v: torch.Tensor, dim: int) -> torch.Tensor:
    return v.median(dim=dim).values


@dataclass(frozen=True)
class TernaryQuantizer(Quantizer):
    """Codes ``{−1, 0, 1}`` times a scale ``γ`` (see the module docstring).

    Args:
        measure: ``"absmean"`` (BitNet b1.58) or ``"absmedian"`` (Reloaded).
        granularity: which weights share ``γ`` (the papers: per tensor).
        rounding: ``"nearest"`` or ``"stochastic"``.
        eps: floor of ``γ``.

    >>> q = TernaryQuantizer("absmean")
    >>> q.encode(torch.tensor([-2.0, -0.1, 0.6, 1.5])).codes.tolist()
    [-1, 0, 1, 1]
    """

    measure: Measure = "absmean"
    granularity: Granularity = field(default_factory=Granularity.per_tensor)
    rounding: Rounding = "nearest"
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"measure={self.measure!r}: expected one of {MEASURES}")
        if not isinstance(self.granularity, Granularity):
            raise TypeError(f"granularity={self.granularity!r}: expected a Granularity")
        check_rounding(self.rounding)
        check_real("eps", self.eps)

    @property
    def bits(self) -> float:
        return math.log2(3)

    @property
    def code_min(self) -> int:
        return -1

    @property
    def code_max(self) -> int:
        return 1

    def fit(self, x: torch.Tensor) -> QParams:
        check_float_input(x)
        reduce = torch.mean if self.measure == "absmean" else _median
        return QParams(torch.clamp(self.granularity.reduce(x.detach().abs(), reduce), min=self.eps))

    def _codes(self, v: torch.Tensor, params: QParams, generator: torch.Generator | None) -> torch.Tensor:
        return torch.clamp(round_to_integer(v * (1 / params.scale), self.rounding, generator), -1, 1)

    def _values(self, codes: torch.Tensor, params: QParams) -> torch.Tensor:
        return codes / (1 / params.scale)

    def _clip_range(self, params: QParams) -> tuple[torch.Tensor, torch.Tensor]:
        top = self._values(torch.ones_like(params.scale), params)
        return -top, top
