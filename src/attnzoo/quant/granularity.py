"""Which entries of a tensor share one set of quantisation parameters (scale, zero point, exponent bias).

A :class:`Granularity` reduces a tensor to its *compact* parameter shape and broadcasts compact parameters back:

=================  ================================  ===================================================
kind               compact shape of ``x (*lead, K)``  typical use
=================  ================================  ===================================================
``"tensor"``       ``()``                            activations with calibrated ranges (W8A8 of 2306.12929)
``"channel"``      ``(x.shape[axis],)``              per output channel of a weight (``axis=0``), per input
                                                     channel of an activation (``axis=-1``)
``"row"``          ``lead``                          per output channel of a weight ``(out, in)``; per token
                                                     of an activation (dynamic: BitNet's absmax, int8 GEMMs)
``"group"``        ``(*lead, K // group_size)``      per row and per group of ``group_size`` consecutive
                                                     entries of the last (input) axis (GPTQ / AWQ / torchao)
=================  ================================  ===================================================

``"row"`` and ``"group"`` depend on the leading shape of each tensor, so they are *dynamic* (parameters from
the tensor itself); an observer calibrates only ``"tensor"`` and ``"channel"`` ranges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from attnzoo.validation import ArgumentTypeError, check_int, is_int

Kind = Literal["tensor", "channel", "row", "group"]
KINDS: tuple[Kind, ...] = ("tensor", "channel", "row", "group")


@dataclass(frozen=True)
class Granularity:
    """How parameters are shared (see the module docstring). Build with :meth:`per_tensor`, :meth:`per_channel`,
    :meth:`per_row` or :meth:`per_group`."""

    kind: Kind = "tensor"
    axis: int = 0
    group_size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}: expected one of {KINDS}")
        if not is_int(self.axis):
            raise ArgumentTypeError(f"axis={self.axis!r}: expected an int, got {type(self.axis).__name__}")
        if self.kind == "group":
            check_int("group_size", self.group_size, 1)
        elif self.group_size != 0:
            raise ValueError(f"group_size={self.group_size!r} with kind={self.kind!r}: group_size belongs to "
                             "kind='group' (Granularity.per_group)")

    @classmethod
    def per_tensor(cls) -> Granularity:
        return cls("tensor")

    @classmethod
    def per_channel(cls, axis: int = 0) -> Granularity:
        return cls("channel", axis=axis)

    @classmethod
    def per_row(cls) -> Granularity:
        return cls("row")

    @classmethod
    def per_group(cls, group_size: int) -> Granularity:
        return cls("group", group_size=group_size)

    @property
    def is_static(self) -> bool:
        """Whether parameters can be calibrated once and reused on tensors of other leading shapes."""
        return self.kind in ("tensor", "channel")

    def _axis(self, x: torch.Tensor) -> int:
        if not -x.dim() <= self.axis < x.dim():
            raise ValueError(f"per-channel axis={self.axis} is out of range for a tensor of shape {tuple(x.shape)}")
        return self.axis % x.dim()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the last axis split into ``(K // group_size, group_size)`` for ``"group"``, else ``x``."""
        if self.kind in ("row", "group") and x.dim() == 0:
            raise ValueError(f"granularity {self.kind!r} needs a tensor of at least 1 dimension, got a scalar")
        if self.kind != "group":
            return x
        k = x.shape[-1]
        if k % self.group_size:
            raise ValueError(f"group_size={self.group_size} does not divide the last axis of a tensor of shape "
                             f"{tuple(x.shape)} ({k} entries): expected a divisor of {k}")
        return x.reshape(*x.shape[:-1], k // self.group_size, self.group_size)

    def reduce(self, x: torch.Tensor, fn: Callable[..., torch.Tensor]) -> torch.Tensor:
        """``fn(v, dim=d)`` over each parameter group of ``x``, in compact shape; ``fn`` is a reduction such as
        ``torch.amax`` taking ``dim`` (an int) and returning a tensor."""
        v = self.view(x)
        if self.kind == "tensor":
            return fn(v.reshape(-1), dim=0)
        if self.kind == "channel":
            axis = self._axis(v)
            return fn(v.movedim(axis, 0).reshape(v.shape[axis], -1), dim=1)
        return fn(v, dim=-1)

    def compact_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """The shape of the parameters of ``x``."""
        v = self.view(x)
        if self.kind == "tensor":
            return ()
        if self.kind == "channel":
            return (v.shape[self._axis(v)],)
        return tuple(v.shape[:-1])

    def broadcast(self, param: torch.Tensor, x: torch.Tensor, name: str = "parameter") -> torch.Tensor:
        """``param`` (compact shape) reshaped to broadcast against :meth:`view` of ``x``."""
        expected = self.compact_shape(x)
        if tuple(param.shape) != expected:
            raise ValueError(f"{name} has shape {tuple(param.shape)}; expected {expected} for {self.kind}-wise "
                             f"parameters of a tensor of shape {tuple(x.shape)}")
        v_dim = x.dim() + (self.kind == "group")
        if self.kind == "tensor":
            return param
        if self.kind == "channel":
            shape = [1] * v_dim
            shape[self._axis(x)] = param.shape[0]
            return param.reshape(shape)
        return param.unsqueeze(-1)

    def __str__(self) -> str:
        return {"tensor": "per tensor", "channel": f"per channel (axis {self.axis})", "row": "per row",
                "group": f"per group of {self.group_size}"}[self.kind]
