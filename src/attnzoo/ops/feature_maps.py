"""The convention and the input checks of the CNN attention modules (family ``cnn``, layout ``(B, C, H, W)``).

Every op of the family is the functional form of its module, as ``F.conv2d`` is of ``nn.Conv2d``:
``op(x, <the module's parameters as tensors>, <options>, impl=...)`` with ``x`` a feature map ``(B, C, H, W)`` and
the result of the same shape. Weights come in the shapes PyTorch's modules store them (a depthwise ``Conv2d``'s
weight ``(C, 1, k, k)``, a ``Conv1d``'s ``(1, 1, k)`` flattened to ``(k,)`` where the op says so), biases as
``(C_out,)`` or ``None``. A normalisation inside a module (ULSAM's BatchNorm) enters as its affine ``weight`` /
``bias`` and its running statistics with a ``training`` flag, with :func:`torch.nn.functional.batch_norm`'s
semantics: ``training=False`` normalises with the running statistics (a pure function, what the test contract
runs); ``training=True`` with the batch's statistics, updating the running ones in place as BatchNorm does. The
layer (``attnzoo.layers``) owns the parameters, builds them as the paper's code does, and calls the op.

The checks here name the argument, the value given and what is expected (:mod:`attnzoo.validation`).
"""

from __future__ import annotations

import torch

from attnzoo.registry import FLOAT_DTYPES
from attnzoo.validation import ArgumentTypeError, check_flag, check_real, check_tensor_like, is_int

LAYOUT = "(B, C, H, W)"


def check_feature_map(name: str, x: torch.Tensor) -> tuple[int, int, int, int]:
    """``x`` must be a 4-D floating ``(B, C, H, W)`` tensor with ``C, H, W >= 1`` (``B = 0`` is allowed);
    returns its shape."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} has shape {tuple(x.shape)} ({x.dim()}-D); expected 4-D {LAYOUT}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}.dtype={x.dtype}; expected a floating dtype "
                        f"({', '.join(sorted(str(d) for d in FLOAT_DTYPES))})")
    b, c, h, w = x.shape
    if c == 0 or h == 0 or w == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected at least one channel and one pixel "
                         f"(C, H, W >= 1) in {LAYOUT}")
    return b, c, h, w


def check_weight(name: str, t: torch.Tensor, shape: tuple[int, ...], x: torch.Tensor) -> None:
    """A parameter tensor of the op: exactly ``shape``, and the dtype and device of the feature map ``x``."""
    check_tensor_like(name, t, shape, x, "x")


def check_optional_weight(name: str, t: torch.Tensor | None, shape: tuple[int, ...], x: torch.Tensor) -> None:
    """:func:`check_weight` for a tensor that may be ``None`` (a bias the module does not have)."""
    if t is not None:
        check_weight(name, t, shape, x)


def check_odd_int(name: str, value: int, minimum: int = 1) -> int:
    """``value`` must be an odd ``int`` (not a ``bool``) ``>= minimum``: a kernel size that has a centre tap
    (``padding = (k - 1) // 2`` keeps the size); returns it."""
    if not is_int(value):
        raise ArgumentTypeError(f"{name}={value!r}: expected an odd int >= {minimum}, got {type(value).__name__}")
    if value < minimum or value % 2 == 0:
        raise ValueError(f"{name}={value!r}: expected an odd int >= {minimum} (a kernel with a centre tap)")
    return value


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` must be one of the strings ``choices`` (a module's named form or layout); returns it."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value


def check_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """``value`` (a channel count) must split into ``divisor`` equal parts."""
    if value % divisor:
        raise ValueError(f"{name}={value} must be divisible by {divisor_name}={divisor} (each of the {divisor} "
                         f"parts takes {name} / {divisor_name} channels)")


def check_norm_statistics(tensors: dict[str, torch.Tensor], channels: int, x: torch.Tensor) -> None:
    """A normalisation's ``weight``, ``bias``, ``running_mean`` and ``running_var`` (``tensors``, name -> tensor)
    must each be ``(channels,)`` in the dtype and device of ``x``."""
    for name, t in tensors.items():
        check_weight(name, t, (channels,), x)


def check_norm_options(training: bool, momentum: float, eps: float) -> None:
    """BatchNorm's options: ``training`` a bool, ``momentum`` in ``[0, 1]`` (PyTorch's convention: the weight of
    the new batch statistic), ``eps > 0``."""
    check_flag("training", training)
    if check_real("momentum", momentum, inclusive=True) > 1:
        raise ValueError(f"momentum={momentum!r}: expected a finite real number in [0, 1] (PyTorch's BatchNorm "
                         "momentum, the weight of the new batch statistic)")
    check_real("eps", eps)


def batch_norm_reference(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                         running_var: torch.Tensor, training: bool, momentum: float, eps: float) -> torch.Tensor:
    """BatchNorm of ``h`` ``(B, C, H, W)`` written out: ``(h - μ) / sqrt(σ² + eps) · weight + bias`` per channel,
    with the running statistics (``training=False``) or the batch's (mean and biased variance over B, H, W;
    ``training=True``, which then moves the running ones towards the batch's, the variance unbiased, by
    ``momentum``, in place, as ``F.batch_norm`` does)."""
    shape = (1, -1, 1, 1)
    if training:
        mean = h.mean(dim=(0, 2, 3))
        var = (h - mean.view(shape)).square().mean(dim=(0, 2, 3))
        with torch.no_grad():
            n = h.numel() // h.shape[1]
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * n / max(n - 1, 1))
    else:
        mean, var = running_mean, running_var
    return (h - mean.view(shape)) / (var.view(shape) + eps).sqrt() * weight.view(shape) + bias.view(shape)
