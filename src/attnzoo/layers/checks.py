"""Checks shared by every layer: constructor sizes and the input of ``forward``, each error naming the argument,
the value given and what is expected (instead of torch's "mat1 and mat2 shapes cannot be multiplied")."""

from __future__ import annotations

import torch
from torch import nn

from attnzoo.registry import FLOAT_DTYPES
from attnzoo.validation import check_int


def check_heads(dim: int, num_heads: int) -> int:
    """Constructor check of ``dim`` and ``num_heads`` (ints >= 1, ``num_heads`` dividing ``dim``); returns the
    head dim."""
    check_int("dim", dim)
    check_int("num_heads", num_heads)
    if dim % num_heads:
        raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads} (each head takes dim / num_heads "
                         "channels)")
    return dim // num_heads


def autocast_like(tensor: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """``tensor`` (a parameter or buffer a layer passes to its op as a tensor: a bias table, decay slopes, a filter,
    an operator's coefficients) in the dtype of the activation ``x`` when autocast is on for ``x``'s device, so
    that it follows the precision autocast gave the activations; unchanged otherwise (and ``None`` stays
    ``None``). Outside autocast a dtype mismatch still reaches the op's check and raises there. The cast is
    differentiable: gradients reach the float32 parameter in float32.
    """
    if tensor is None or tensor.dtype == x.dtype or not torch.is_autocast_enabled(x.device.type):
        return tensor
    return tensor.to(x.dtype)


def check_layer_input(layer: nn.Module, x: torch.Tensor, *, rank: int, dim: int, layout: str,
                      channels_first: bool = False, name: str = "input") -> None:
    """Check the input of ``layer.forward``: a floating tensor of ``rank`` dims whose last dim is ``dim``
    (channels last; ``layout`` ends with ``C)``), or whose dim 1 is ``dim`` when ``channels_first`` (CNN modules,
    ``layout`` ``(B, C, H, W)``), on the device and in the dtype of the layer's parameters.

    Under ``torch.autocast`` a float32 layer legitimately receives (and computes in) a lower precision, so the
    dtype is compared with the parameters' only when autocast is off for the input's device type
    (``torch.is_autocast_enabled(device_type)``). ``name``: what the errors call the tensor (a layer with
    several inputs names each).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        raise ValueError(f"{name} has shape {tuple(x.shape)} ({x.dim()}-D); expected {rank}-D {layout}")
    axis = 1 if channels_first else -1
    if x.shape[axis] != dim:
        named = layout.replace("C,", f"C={dim},") if channels_first else layout.replace("C)", f"C={dim})")
        raise ValueError(f"{name} has shape {tuple(x.shape)}, {x.shape[axis]} channels; expected {named}, the "
                         f"layer's dim={dim} channels {'first' if channels_first else 'last'}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} dtype {x.dtype}; expected a floating dtype "
                        f"({', '.join(sorted(str(d) for d in FLOAT_DTYPES))})")
    parameter = next(layer.parameters(), None)
    if parameter is None:
        return
    if x.device != parameter.device:
        raise ValueError(f"{name} is on {x.device}; expected the layer's device {parameter.device} "
                         f"(move one with .to())")
    if x.dtype != parameter.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name} dtype {x.dtype} differs from the layer's parameter dtype {parameter.dtype}; "
                        f"expected {parameter.dtype} (convert the input or the layer, or run under torch.autocast)")
