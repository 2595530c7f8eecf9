"""Range observers: they watch calibration activations and give the ``[low, high]`` range a quantizer's
``params_from_range`` turns into parameters.

- :class:`MinMaxObserver`: the smallest and largest value over every batch seen.
- :class:`RunningMinMaxObserver`: the first batch's min / max, then ``(1 − momentum) · new + momentum · old`` —
  the official ``RunningMinMaxEstimator`` of Qualcomm-AI-research/outlier-free-transformers
  (``quantization/range_estimators.py`` at 1e59744, momentum 0.9), used by the W8A8 protocol of arXiv 2306.12929.
- :class:`PercentileObserver`: per batch the ``(100 − p)``-th and ``p``-th percentiles (linear interpolation, as
  ``numpy.percentile``, which the official estimator calls), combined across batches by the same running
  average (the official ``RunningMinMaxEstimator(percentile=p)``; ``momentum=None`` keeps the latest batch's).

Per tensor or per channel (``Granularity.per_channel(axis)``, every other axis reduced); the compact shape is
fixed by the first batch and a later batch of another channel count is refused. Verified in
``tests/test_quant_observers.py`` (the momentum update, numpy's percentiles bit for bit, shape errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attnzoo.quant.base import check_float_input
from attnzoo.quant.granularity import Granularity
from attnzoo.validation import check_real


@dataclass
class Observer:
    """Base: ``update(x)`` with each batch, then ``range()``; subclasses define ``_batch_range`` and
    ``_combine``."""

    granularity: Granularity = field(default_factory=Granularity.per_tensor)
    low: torch.Tensor | None = field(default=None, repr=False)
    high: torch.Tensor | None = field(default=None, repr=False)
    batches: int = field(default=0, repr=False)
    _first_shape: tuple[int, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.granularity, Granularity):
            raise TypeError(f"granularity={self.granularity!r}: expected a Granularity")
        if not self.granularity.is_static:
            raise ValueError(f"granularity {self.granularity}: an observer calibrates per-tensor or per-channel "
                             "ranges only (per-row / per-group parameters follow each tensor: quantize those "
                             "dynamically, observer=None)")

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.granularity
        return g.reduce(x, torch.amin), g.reduce(x, torch.amax)

    def _combine(self, low: torch.Tensor, high: torch.Tensor) -> None:
        raise NotImplementedError

    def update(self, x: torch.Tensor) -> None:
        """Record a batch (detached)."""
        x = check_float_input(x).detach()
        shape = self.granularity.compact_shape(x)
        if self.low is not None and shape != tuple(self.low.shape):
            raise ValueError(f"observer ({self.granularity}) got a tensor of shape {tuple(x.shape)}, whose "
                             f"parameters have shape {shape}; the first batch (shape {self._first_shape}) fixed "
                             f"{tuple(self.low.shape)}: calibration batches must agree in that shape")
        low, high = self._batch_range(x)
        if self.low is None:
            self.low, self.high, self._first_shape = low, high, tuple(x.shape)
        else:
            self._combine(low, high)
        self.batches += 1

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` in compact shape."""
        if self.low is None or self.high is None:
            raise ValueError(f"{type(self).__name__} has seen no data: calibration ran no batch through it")
        return self.low, self.high

    def reset(self) -> None:
        self.low = self.high = self._first_shape = None
        self.batches = 0


@dataclass
class MinMaxObserver(Observer):
    """Min and max over every batch."""

    def _combine(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low, self.high = torch.minimum(self.low, low), torch.maximum(self.high, high)


@dataclass
class RunningMinMaxObserver(Observer):
    """The official running min-max estimator (see the module docstring)."""

    momentum: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real("momentum", self.momentum, minimum=0.0, inclusive=True)
        if self.momentum > 1:
            raise ValueError(f"momentum={self.momentum}: expected a number in [0, 1]")

    def _combine(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low = (1 - self.momentum) * low + self.momentum * self.low
        self.high = (1 - self.momentum) * high + self.momentum * self.high


def percentile(v: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q``-th percentile of each row of ``v`` ``(C, n)`` with numpy's default linear interpolation
    (including its ``t >= 0.5`` branch, ``b − (b − a)(1 − t)``, so that the values agree bit for bit)."""
    s = torch.sort(v, dim=1).values
    n, quantile = s.shape[1], q / 100
    index = (n - 1) * quantile  # numpy's virtual index for method="linear"
    lo = int(index // 1)
    hi = min(lo + 1, n - 1)
    t = index - lo
    a, b = s[:, lo], s[:, hi]
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


@dataclass
class PercentileObserver(RunningMinMaxObserver):
    """Per-batch percentiles with a running average (see the module docstring)."""

    percentile: float = 99.999
    momentum: float | None = 0.9  # type: ignore[assignment]

    def __post_init__(self) -> None:
        Observer.__post_init__(self)
        check_real("percentile", self.percentile, minimum=50.0, inclusive=True)
        if self.percentile > 100:
            raise ValueError(f"percentile={self.percentile}: expected a number in [50, 100]")
        if self.momentum is not None:
            check_real("momentum", self.momentum, minimum=0.0, inclusive=True)
            if self.momentum > 1:
                raise ValueError(f"momentum={self.momentum}: expected a number in [0, 1] or None")

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.granularity
        if g.kind == "tensor":
            rows = x.reshape(1, -1)
        else:
            axis = g.axis % x.dim()
            rows = x.movedim(axis, 0).reshape(x.shape[axis], -1)
        low, high = percentile(rows, 100 - self.percentile), percentile(rows, self.percentile)
        return (low[0], high[0]) if g.kind == "tensor" else (low, high)

    def _combine(self, low: torch.Tensor, high: torch.Tensor) -> None:
        if self.momentum is None:
            self.low, self.high = low, high
        else:
            super()._combine(low, high)
