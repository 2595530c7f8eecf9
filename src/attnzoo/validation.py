"""Input checks shared by every op: each error names the argument, the value given and what is expected.

Scalars are taken only in their own Python types, nothing is converted: a flag must be a ``bool`` (not ``0`` /
``1``, not ``"False"``, not ``None``, not a numpy or tensor bool: pass ``bool(x)`` to convert one on purpose), an
integer option a Python ``int`` (not a ``bool``, a float or a numpy integer), a real option an ``int`` or
``float`` (numpy's ``float64`` is a ``float``; not a ``bool``, a string or a tensor). A value of the wrong type
raises :class:`ArgumentTypeError`, a value out of range ``ValueError``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from attnzoo.registry import FLOAT_DTYPES, NotSupportedError


class ArgumentTypeError(TypeError, ValueError):
    """An option of the wrong type. Both a ``TypeError`` and a ``ValueError``, so that code catching either kind
    of bad-argument error (as earlier versions raised one or the other) still catches it."""


def is_int(value: object) -> bool:
    """``value`` is a Python ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """``value`` is a Python ``int`` or ``float`` (numpy's ``float64`` included) and not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_flag(name: str, value: bool) -> bool:
    """``value`` must be a ``bool``; returns it."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name}={value!r}: expected a bool (True or False), got {type(value).__name__}")
    return value


def check_int(name: str, value: int, minimum: int = 1) -> int:
    """``value`` must be an ``int`` (not a ``bool``) ``>= minimum``; returns it."""
    if not is_int(value):
        raise ArgumentTypeError(f"{name}={value!r}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}={value!r}: expected an int >= {minimum}")
    return value


def check_optional_int(name: str, value: int | None, minimum: int = 1) -> int | None:
    """``None``, or an ``int >= minimum`` (see :func:`check_int`)."""
    return None if value is None else check_int(name, value, minimum)


def check_real(name: str, value: float, *, minimum: float = 0.0, inclusive: bool = False) -> float:
    """``value`` must be a finite real ``int`` / ``float`` (not a ``bool``, string or tensor) ``> minimum``
    (``>= minimum`` when ``inclusive``); returns it as a ``float``."""
    bound = f"{'>=' if inclusive else '>'} {minimum}"
    if not is_real(value):
        raise ArgumentTypeError(f"{name}={value!r}: expected a finite real number {bound}, "
                                f"got {type(value).__name__}")
    if not math.isfinite(value) or not (value >= minimum if inclusive else value > minimum):
        raise ValueError(f"{name}={value!r}: expected a finite real number {bound}")
    return float(value)


def check_scale(name: str, value: float | None, default: float | None) -> float | None:
    """An attention scale: ``default`` for ``None`` (a layer passes ``None`` to keep the op's default), else a
    finite real number > 0 (see :func:`check_real`)."""
    return default if value is None else check_real(name, value)


def per_axis(value: int | Sequence[int], ndim: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """``value`` as one int per spatial axis: an int is repeated, a sequence must have ``ndim`` ints."""
    values = (value,) * ndim if is_int(value) else tuple(value) if isinstance(value, Sequence) else ()
    if len(values) != ndim or not all(is_int(v) for v in values):
        raise ArgumentTypeError(f"{name}={value!r}: expected an int or a sequence of {ndim} ints")
    if any(v < minimum for v in values):
        raise ValueError(f"{name}={value!r}: every entry must be >= {minimum}")
    return values


def per_axis_flags(value: bool | Sequence[bool], ndim: int, name: str) -> tuple[bool, ...]:
    """``value`` as one bool per spatial axis."""
    values = (value,) * ndim if isinstance(value, bool) else tuple(value) if isinstance(value, Sequence) else ()
    if len(values) != ndim or not all(isinstance(v, bool) for v in values):
        raise ArgumentTypeError(f"{name}={value!r}: expected a bool or a sequence of {ndim} bools")
    return values


class _RefuseDoubleBackward(torch.autograd.Function):
    """Identity on first-order gradients, linked to the tensors they depend on, whose own backward raises
    :class:`attnzoo.NotSupportedError`: differentiating them again fails by name, with or without
    ``allow_unused``, instead of giving ``None``."""

    @staticmethod
    def forward(ctx, message: str, anchors: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
        ctx.message = message
        return tuple(t.clone() for t in tensors[anchors:])

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> None:  # noqa: ANN001
        raise NotSupportedError(ctx.message)


def first_order_only(implementation: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate the ``backward`` of a custom ``autograd.Function`` that has no double backward.

    The backward runs without autograd (as :func:`torch.autograd.function.once_differentiable`); when it runs
    with grad mode on (``create_graph=True``) its gradients are passed through :class:`_RefuseDoubleBackward`,
    linked to the saved tensors and incoming gradients that require grad, so that differentiating them again
    raises :class:`attnzoo.NotSupportedError` naming ``implementation``.
    """
    message = (f"{implementation} has no double backward (create_graph=True): its backward is a hand-written "
               "first-order one; impl=\"reference\" supports double backward")

    def decorate(backward: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(backward)
        def wrapper(ctx: Any, *grads: Any) -> Any:  # noqa: ANN401
            with torch.no_grad():
                outputs = backward(ctx, *grads)
            if not torch.is_grad_enabled():
                return outputs
            anchors = [t for t in (*ctx.saved_tensors, *grads) if isinstance(t, torch.Tensor) and t.requires_grad]
            results = list(outputs) if isinstance(outputs, tuple) else [outputs]
            slots = [i for i, t in enumerate(results) if isinstance(t, torch.Tensor)]
            if not anchors or not slots:
                return outputs
            refused = _RefuseDoubleBackward.apply(message, len(anchors), *anchors, *(results[i] for i in slots))
            for i, t in zip(slots, refused):
                results[i] = t
            return tuple(results) if isinstance(outputs, tuple) else results[0]

        return wrapper

    return decorate


def check_float_tensors(tensors: dict[str, torch.Tensor], rank: int, layout: str) -> None:
    """Each of ``tensors`` (name -> value) is a floating ``torch.Tensor`` of ``rank`` dims (``layout``)."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != rank:
            raise ValueError(f"{name} has shape {tuple(t.shape)} ({t.dim()}-D); expected {rank}-D {layout}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}.dtype={t.dtype}; expected a floating dtype "
                            f"({', '.join(sorted(str(d) for d in FLOAT_DTYPES))})")


def check_one_dtype_and_device(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    """``query``, ``key`` and ``value`` share one dtype and one device."""
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"query, key, value dtypes differ: {query.dtype}, {key.dtype}, {value.dtype}; "
                        "expected one dtype")
    if not (query.device == key.device == value.device):
        raise ValueError(f"query, key, value devices differ: {query.device}, {key.device}, {value.device}; "
                         "expected one device")


def check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, spatial_dims: int,
              layout: str) -> None:
    """Check the (B, H, *spatial, D) inputs of an op: tensors, rank, equal shapes, float dtype, one device.

    ``value`` may have its own head dim; everything else must match ``query`` exactly (nothing broadcasts).
    """
    check_float_tensors({"query": query, "key": key, "value": value}, 3 + spatial_dims, layout)
    if key.shape != query.shape:
        raise ValueError(f"key has shape {tuple(key.shape)}; expected the query's shape {tuple(query.shape)} "
                         f"{layout}")
    if value.shape[:-1] != query.shape[:-1]:
        raise ValueError(f"value has shape {tuple(value.shape)}; expected {tuple(query.shape[:-1])} in all "
                         f"but the last (head) dim {layout}")
    check_one_dtype_and_device(query, key, value)
    if query.shape[-1] == 0 or value.shape[-1] == 0:
        raise ValueError(f"head dim is 0 (query {tuple(query.shape)}, value {tuple(value.shape)}); expected >= 1")
    spatial = tuple(query.shape[2:-1])
    if any(s == 0 for s in spatial):
        raise ValueError(f"query has an empty spatial axis: shape {tuple(query.shape)} {layout}")


def check_tensor_like(name: str, t: torch.Tensor, shape: tuple[int, ...], reference: torch.Tensor,
                      reference_name: str = "the query") -> None:
    """Check an auxiliary tensor (a bias table, filter, state...) for exact shape, and the dtype and device of
    the op's main input ``reference``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {shape}")
    if t.dtype != reference.dtype:
        raise TypeError(f"{name}.dtype={t.dtype}; expected {reference_name}'s dtype {reference.dtype}")
    if t.device != reference.device:
        raise ValueError(f"{name} is on {t.device}; expected {reference_name}'s device {reference.device}")


def check_token_set(name: str, t: torch.Tensor, query: torch.Tensor) -> int:
    """Check extra tokens ``(B, H, M, D)`` matching a ``(B, H, N, D)`` query (agents, landmarks); returns M."""
    b, h, _, d = query.shape
    if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[2] == 0:
        raise ValueError(f"{name} has shape {tuple(getattr(t, 'shape', ()))}; expected (B, H, M, D) "
                         f"= ({b}, {h}, M >= 1, {d})")
    check_tensor_like(name, t, (b, h, t.shape[2], d), query)
    return t.shape[2]


def empty_output(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """The (correct, empty) result for a batch or head count of 0, still connected to the autograd graph."""
    return value.new_zeros(value.shape) + (query.sum() + key.sum() + value.sum()) * 0
