"""Fake-quantisation modules for post-training quantisation and quantisation-aware training.

- :class:`ActivationQuantizer`: a quantizer at a point of the network. With an observer it has two phases —
  ``"calibrate"`` (records ranges, passes ``x`` through) then, after :meth:`~ActivationQuantizer.freeze`,
  ``"quantize"`` with the frozen parameters (buffers, so they are saved in the ``state_dict``); without one it
  quantizes dynamically (parameters from each tensor: per-token absmax as BitNet's activations, or int8 GEMMs).
  ``"off"`` passes through.
- :class:`QuantLinear`: ``y = out_q(x̂ Ŵᵀ + b)``, ``x̂ = in_q(x)``, ``Ŵ`` the weight fake-quantized at each forward
  (so QAT sees the current weight) with a straight-through gradient. It keeps the original ``weight`` / ``bias``
  parameters (the same objects: a weight tied to an embedding stays tied) and wraps ``nn.Linear`` or the
  transposed ``Conv1D`` of Hugging Face GPT-2 (``weight`` of shape ``(in, out)``).
  :meth:`QuantLinear.freeze_weight` stores a weight already on the grid with its parameters (what GPTQ / RSQ /
  LLM-FP4 produce: parameters that re-fitting the rounded weight would not give back); ``input_transform``
  (e.g. RSQ's randomized Hadamard rotation) is applied to ``x`` before the input quantizer.

Calibration observes with the weights already quantized and the activations in float (as the W8A8 protocol of
:mod:`attnzoo.analysis.outliers` always did).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.quant.base import QParams, QuantizedTensor, Quantizer
from attnzoo.quant.observers import Observer
from attnzoo.quant.ste import STE, check_ste, fake_quantize

Mode = Literal["calibrate", "quantize", "off"]
MODES: tuple[Mode, ...] = ("calibrate", "quantize", "off")


class ActivationQuantizer(nn.Module):
    """Fake quantisation of activations (see the module docstring).

    Args:
        quantizer: the format (e.g. ``UniformQuantizer(8, symmetric=False)``).
        observer: a range observer (copied, so one prototype can serve many layers); ``None`` quantizes each
            tensor with parameters fitted to it (dynamic).
        ste: the straight-through estimator of the backward (``"clipped"`` by default).
    """

    def __init__(self, quantizer: Quantizer, observer: Observer | None = None, ste: STE = "clipped") -> None:
        super().__init__()
        if not isinstance(quantizer, Quantizer):
            raise TypeError(f"quantizer={quantizer!r}: expected an attnzoo.quant Quantizer")
        if observer is not None and not isinstance(observer, Observer):
            raise TypeError(f"observer={observer!r}: expected an attnzoo.quant Observer or None")
        if observer is not None:
            quantizer.params_from_range(torch.zeros(()), torch.ones(()))  # refuses formats without a range
        self.quantizer = quantizer
        self.observer = None if observer is None else copy.deepcopy(observer)
        self.ste = check_ste(ste)
        self.mode: Mode = "calibrate" if observer is not None else "quantize"
        self.register_buffer("scale", None)
        self.register_buffer("zero_point", None)

    @property
    def params(self) -> QParams | None:
        """The frozen parameters (``None`` before :meth:`freeze` or when dynamic)."""
        return None if self.scale is None else QParams(self.scale, self.zero_point)

    def set_mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: expected one of {MODES}")
        if mode == "calibrate" and self.observer is None:
            raise ValueError("mode='calibrate' needs an observer (this quantizer is dynamic)")
        if mode == "quantize" and self.observer is not None and self.scale is None:
            raise ValueError("mode='quantize' before freeze(): calibrate first")
        self.mode = mode

    def freeze(self) -> None:
        """Parameters from the observer's range; then quantize. No-op for a dynamic quantizer."""
        if self.observer is None:
            return
        params = self.quantizer.params_from_range(*self.observer.range())
        self.scale, self.zero_point = params.scale, params.zero_point
        self.mode = "quantize"

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        """Frozen parameters load into a fresh (uncalibrated) quantizer, which then quantizes."""
        loaded = False
        for name in ("scale", "zero_point"):
            if prefix + name in state_dict and getattr(self, name) is None:
                setattr(self, name, state_dict[prefix + name].clone())
                loaded = True
        super()._load_from_state_dict(state_dict, prefix, *args)
        if loaded:
            self.mode = "quantize"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return x
        if self.mode == "calibrate":
            self.observer.update(x)
            return x
        return fake_quantize(x, self.quantizer, self.params, ste=self.ste)

    def extra_repr(self) -> str:
        kind = "dynamic" if self.observer is None else type(self.observer).__name__
        return f"{self.quantizer!r}, {kind}, mode={self.mode!r}, ste={self.ste!r}"


def _is_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``transformers.pytorch_utils.Conv1D`` (checked by name: transformers stays optional)."""
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")


def is_quantizable(module: nn.Module) -> bool:
    """``nn.Linear`` or a Hugging Face ``Conv1D`` (not an already-quantized layer)."""
    return isinstance(module, nn.Linear) or _is_conv1d(module)


class QuantLinear(nn.Module):
    """Fake-quantized linear layer (see the module docstring); build with :meth:`from_module`.

    Args:
        weight: the weight parameter, ``(out, in)`` (``(in, out)`` when ``transposed``).
        bias: the bias parameter or ``None``.
        weight_quantizer: the weight's format (``None`` keeps it in float).
        input_quantizer / output_quantizer: :class:`ActivationQuantizer` modules or ``None``.
        transposed: the weight is stored ``(in, out)`` (Hugging Face ``Conv1D``).
        weight_ste: the straight-through estimator of the weight (``"identity"``, BitNet's).
        input_transform: a module applied to ``x`` first (``None``: none), e.g. an orthogonal rotation whose
            transpose was folded into the weight.
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, *, weight_quantizer: Quantizer | None = None,
                 input_quantizer: ActivationQuantizer | None = None,
                 output_quantizer: ActivationQuantizer | None = None, transposed: bool = False,
                 weight_ste: STE = "identity", input_transform: nn.Module | None = None) -> None:
        super().__init__()
        self.weight, self.bias = weight, bias
        self.transposed = transposed
        self.weight_quantizer = weight_quantizer
        self.weight_ste = check_ste(weight_ste)
        self.input_quantizer, self.output_quantizer = input_quantizer, output_quantizer
        self.input_transform = input_transform
        self.register_buffer("weight_scale", None)
        self.register_buffer("weight_zero_point", None)
        if weight_quantizer is not None:
            weight_quantizer.fit(self.weight_matrix().detach())  # refuses groups that do not divide, ...

    @classmethod
    def from_module(cls, module: nn.Module, **kwargs: object) -> QuantLinear:
        """Wrap an ``nn.Linear`` or a Hugging Face ``Conv1D`` (sharing its parameters)."""
        if not is_quantizable(module):
            raise TypeError(f"cannot quantize a {type(module).__name__}: expected nn.Linear or transformers' Conv1D")
        return cls(module.weight, module.bias, transposed=_is_conv1d(module), **kwargs)  # type: ignore[arg-type]

    @property
    def in_features(self) -> int:
        return self.weight.shape[0 if self.transposed else 1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[1 if self.transposed else 0]

    def weight_matrix(self) -> torch.Tensor:
        """The weight as ``(out, in)`` (a view)."""
        return self.weight.t() if self.transposed else self.weight

    @property
    def weight_params(self) -> QParams | None:
        """The frozen weight parameters (:meth:`freeze_weight`), or ``None``: fitted to the weight at each use."""
        return None if self.weight_scale is None else QParams(self.weight_scale, self.weight_zero_point)

    def freeze_weight(self, weight: torch.Tensor, params: QParams) -> None:
        """Replace the weight by ``weight`` ``(out, in)`` (on the quantizer's grid for ``params``) and keep
        ``params`` for every later forward and :meth:`encode_weight`. The weight becomes a new parameter, so a
        weight tied to another module (an embedding) is untied rather than overwritten."""
        if self.weight_quantizer is None:
            raise ValueError("freeze_weight needs a weight quantizer (this QuantLinear has weight_quantizer=None)")
        expected = (self.out_features, self.in_features)
        if tuple(weight.shape) != expected:
            raise ValueError(f"weight has shape {tuple(weight.shape)}; expected (out, in) = {expected}")
        self.weight_quantizer.broadcast_params(params, weight)  # refuses parameters of the wrong shape
        stored = weight.t() if self.transposed else weight
        self.weight = nn.Parameter(stored.detach().to(self.weight.dtype).contiguous(),
                                   requires_grad=self.weight.requires_grad)
        self.weight_scale = params.scale.detach().clone()
        self.weight_zero_point = None if params.zero_point is None else params.zero_point.detach().clone()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        """Frozen weight parameters load into a fresh (unfrozen) layer, which then keeps them."""
        for name in ("weight_scale", "weight_zero_point"):
            if prefix + name in state_dict and getattr(self, name) is None:
                setattr(self, name, state_dict[prefix + name].clone())
        super()._load_from_state_dict(state_dict, prefix, *args)

    def quantized_weight(self) -> torch.Tensor:
        """``Ŵ`` ``(out, in)``, fake-quantized with the straight-through gradient."""
        w = self.weight_matrix()
        if self.weight_quantizer is None:
            return w
        return fake_quantize(w, self.weight_quantizer, self.weight_params, ste=self.weight_ste)

    def encode_weight(self) -> QuantizedTensor:
        """The weight's integer codes and parameters (``(out, in)``), for storage."""
        if self.weight_quantizer is None:
            raise ValueError("this QuantLinear keeps its weight in float (weight_quantizer=None): nothing to encode")
        return self.weight_quantizer.encode(self.weight_matrix().detach(), self.weight_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        y = F.linear(x, self.quantized_weight(), self.bias)
        return y if self.output_quantizer is None else self.output_quantizer(y)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"weight={self.weight_quantizer!r}")
