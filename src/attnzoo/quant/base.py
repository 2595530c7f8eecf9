"""The interface every quantizer of :mod:`attnzoo.quant` shares, and the parameters and codes it works with.

A :class:`Quantizer` maps real values to ``2^bits`` (or 3, for ternary) integer *codes* and back:

- ``fit(x)`` derives parameters from ``x`` itself (min-max, absmax, absmean, ...), in the compact shape of its
  :class:`~attnzoo.quant.granularity.Granularity`; ``params_from_range(low, high)`` derives them from a
  calibrated range (an observer's), where the quantizer has a range parameterisation;
- ``encode(x, params)`` gives a :class:`QuantizedTensor` (``int32`` codes + parameters), ``decode`` maps it back;
- ``quantize(x, params)`` is fake quantisation, ``decode(encode(x))`` in ``x``'s dtype, without gradient
  handling (the straight-through estimators are in :mod:`attnzoo.quant.ste`).

``params=None`` means ``fit(x)`` (dynamic quantisation). Subclasses implement ``_codes`` and ``_values`` on the
granularity's view of ``x`` with broadcast parameters (see :meth:`Quantizer.broadcast_params`); new formats
(e.g. a learned codebook, NF4) plug in the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import torch

from attnzoo.quant.granularity import Granularity
from attnzoo.quant.rounding import Rounding
from attnzoo.registry import FLOAT_DTYPES, NotSupportedError

CODE_DTYPE = torch.int32
"""The dtype of the codes :meth:`Quantizer.encode` returns (packing narrows them, :mod:`attnzoo.quant.packing`)."""


@dataclass(frozen=True)
class QParams:
    """Quantisation parameters in compact shape: ``scale`` (the step of a uniform grid, ``2^-b`` for a floating
    point format of exponent bias ``b``, the ternary ``γ``) and, for asymmetric grids, the integer-valued
    ``zero_point``."""

    scale: torch.Tensor
    zero_point: torch.Tensor | None = None

    def to(self, dtype: torch.dtype) -> QParams:
        zero = None if self.zero_point is None else self.zero_point.to(dtype)
        return replace(self, scale=self.scale.to(dtype), zero_point=zero)

    @property
    def nbytes(self) -> int:
        """Bytes the parameters take as stored (their own dtype)."""
        return sum(t.numel() * t.element_size() for t in (self.scale, self.zero_point) if t is not None)


@dataclass(frozen=True)
class QuantizedTensor:
    """``codes`` (``int32``, the shape of the quantized tensor) with the parameters and quantizer that decode
    them."""

    codes: torch.Tensor
    params: QParams
    quantizer: Quantizer

    def dequantize(self) -> torch.Tensor:
        return self.quantizer.decode(self)


def check_float_input(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}.dtype={x.dtype}: expected a floating dtype ({', '.join(map(str, FLOAT_DTYPES))})")
    return x


class Quantizer(ABC):
    """Base class (see the module docstring). Subclasses are frozen dataclasses with ``granularity`` and
    ``rounding`` fields."""

    granularity: Granularity
    rounding: Rounding

    @property
    @abstractmethod
    def bits(self) -> float:
        """Bits per code (``log2 3`` for ternary)."""

    @abstractmethod
    def fit(self, x: torch.Tensor) -> QParams:
        """Parameters from ``x`` itself, compact shape (see :mod:`attnzoo.quant.granularity`)."""

    def params_from_range(self, low: torch.Tensor, high: torch.Tensor) -> QParams:
        """Parameters covering ``[low, high]`` (compact shape), e.g. from an observer."""
        raise NotSupportedError(f"{type(self).__name__} has no range parameterisation (its scale is a statistic "
                                "of the tensor itself): use it for weights or dynamically (observer=None)")

    @abstractmethod
    def _codes(self, v: torch.Tensor, params: QParams, generator: torch.Generator | None) -> torch.Tensor:
        """Integer-valued codes (``v``'s dtype) of the view ``v`` with broadcast parameters."""

    @abstractmethod
    def _values(self, codes: torch.Tensor, params: QParams) -> torch.Tensor:
        """The real values of float-valued ``codes`` with broadcast parameters."""

    @abstractmethod
    def _clip_range(self, params: QParams) -> tuple[torch.Tensor, torch.Tensor]:
        """The smallest and largest representable values, broadcast like ``params``."""

    def broadcast_params(self, params: QParams, x: torch.Tensor) -> QParams:
        """``params`` (compact) reshaped against the granularity's view of ``x``, in ``x``'s dtype."""
        if not isinstance(params, QParams):
            raise TypeError(f"params must be a QParams, got {type(params).__name__}")
        g = self.granularity
        zero = None if params.zero_point is None else g.broadcast(params.zero_point, x, "zero_point")
        return QParams(g.broadcast(params.scale, x, "scale"), zero).to(torch.promote_types(x.dtype, torch.float32))

    def _prepare(self, x: torch.Tensor, params: QParams | None) -> tuple[torch.Tensor, QParams, QParams]:
        """Half-precision inputs are quantized in float32 (their codes can exceed what they represent)."""
        check_float_input(x)
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        params = self.fit(x) if params is None else params
        return self.granularity.view(x), params, self.broadcast_params(params, x)

    def encode(self, x: torch.Tensor, params: QParams | None = None, *,
               generator: torch.Generator | None = None) -> QuantizedTensor:
        """``x`` as integer codes (``params=None``: fitted to ``x``)."""
        v, params, b = self._prepare(x, params)
        codes = self._codes(v, b, generator).reshape(x.shape).to(CODE_DTYPE)
        return QuantizedTensor(codes, params, self)

    def decode(self, q: QuantizedTensor) -> torch.Tensor:
        """The real values of ``q``'s codes, in its parameters' dtype."""
        dtype = q.params.scale.dtype
        v = self.granularity.view(q.codes.to(dtype))
        return self._values(v, self.broadcast_params(q.params, q.codes.to(dtype))).reshape(q.codes.shape)

    def quantize(self, x: torch.Tensor, params: QParams | None = None, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Fake quantisation: ``x`` rounded to the grid, in ``x``'s dtype (``params=None``: fitted to ``x``)."""
        v, _, b = self._prepare(x, params)
        return self._values(self._codes(v, b, generator), b).reshape(x.shape).to(x.dtype)

    def _passes_gradient(self, v: torch.Tensor, params: QParams) -> torch.Tensor:
        """Where the clipped straight-through estimator passes the gradient (view shape, bool): by default
        inside the representable range."""
        low, high = self._clip_range(params)
        return (v >= low) & (v <= high)

    def passes_gradient(self, x: torch.Tensor, params: QParams) -> torch.Tensor:
        """The mask of the clipped straight-through estimator for ``x`` (bool, ``x``'s shape)."""
        v, _, b = self._prepare(x, params)
        return self._passes_gradient(v, b).expand(v.shape).reshape(x.shape)

    def clip_range(self, x: torch.Tensor, params: QParams) -> tuple[torch.Tensor, torch.Tensor]:
        """The smallest and largest representable values for each entry of ``x`` (broadcastable to ``x``)."""
        low, high = self._clip_range(self.broadcast_params(params, x))
        shape = self.granularity.view(x).shape
        return low.expand(shape).reshape(x.shape), high.expand(shape).reshape(x.shape)
