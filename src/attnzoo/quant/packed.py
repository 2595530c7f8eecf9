"""Real storage of quantized linear weights: :class:`PackedLinear` keeps the codes packed in bytes
(:mod:`attnzoo.quant.packing`) with their parameters, and reports exactly how many bytes that takes.

The forward unpacks and dequantizes the weight (a transient float copy), then runs ``F.linear``: it saves storage,
not time, and equals the fake-quantized :class:`~attnzoo.quant.modules.QuantLinear` it was made from bit for bit
(tested). Integer-arithmetic matmuls are in :mod:`attnzoo.quant.int8`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from attnzoo.quant.base import QParams, QuantizedTensor
from attnzoo.quant.modules import ActivationQuantizer, QuantLinear
from attnzoo.quant.packing import container_width, pack_base3, pack_codes, unpack_base3, unpack_codes
from attnzoo.quant.ternary import TernaryQuantizer

Container = Literal["bits", "base3"]


class PackedLinear(nn.Module):
    """A linear layer whose weight is stored as packed integer codes (see the module docstring).

    Args:
        weight: the encoded ``(out, in)`` weight.
        bias: a float bias (copied) or ``None``.
        ternary_base3: pack ternary codes five per byte instead of four (2 bits each).
        input_quantizer / output_quantizer: activation quantizers carried over from a :class:`QuantLinear`.
        input_transform: a module applied to ``x`` first (carried over from a :class:`QuantLinear`).
    """

    def __init__(self, weight: QuantizedTensor, bias: torch.Tensor | None = None, *, ternary_base3: bool = False,
                 input_quantizer: ActivationQuantizer | None = None,
                 output_quantizer: ActivationQuantizer | None = None,
                 input_transform: nn.Module | None = None) -> None:
        super().__init__()
        quantizer = weight.quantizer
        if weight.codes.dim() != 2:
            raise ValueError(f"weight codes have shape {tuple(weight.codes.shape)}; expected (out, in)")
        if ternary_base3 and not isinstance(quantizer, TernaryQuantizer):
            raise ValueError(f"ternary_base3=True needs a TernaryQuantizer, got {type(quantizer).__name__}")
        self.quantizer = quantizer
        self.shape = tuple(weight.codes.shape)
        unsigned = weight.codes - quantizer.code_min
        self.container: Container = "base3" if ternary_base3 else "bits"
        self.width = 0 if ternary_base3 else container_width(math.ceil(quantizer.bits))
        packed = pack_base3(unsigned) if ternary_base3 else pack_codes(unsigned, self.width)
        self.register_buffer("packed", packed)
        self.register_buffer("scale", weight.params.scale.clone())
        self.register_buffer("zero_point", None if weight.params.zero_point is None
                             else weight.params.zero_point.clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.input_quantizer, self.output_quantizer = input_quantizer, output_quantizer
        self.input_transform = input_transform

    @classmethod
    def from_quant_linear(cls, layer: QuantLinear, *, ternary_base3: bool = False) -> PackedLinear:
        """Pack a :class:`QuantLinear`'s weight (its activation quantizers come along)."""
        return cls(layer.encode_weight(), layer.bias, ternary_base3=ternary_base3,
                   input_quantizer=layer.input_quantizer, output_quantizer=layer.output_quantizer,
                   input_transform=layer.input_transform)

    @property
    def in_features(self) -> int:
        return self.shape[1]

    @property
    def out_features(self) -> int:
        return self.shape[0]

    def codes(self) -> torch.Tensor:
        """The ``(out, in)`` ``int32`` codes."""
        numel = self.shape[0] * self.shape[1]
        flat = unpack_base3(self.packed, numel) if self.container == "base3" else unpack_codes(
            self.packed, self.width, numel)
        return (flat + self.quantizer.code_min).reshape(self.shape)

    def weight(self) -> torch.Tensor:
        """The dequantized ``(out, in)`` weight."""
        return self.quantizer.decode(QuantizedTensor(self.codes(), QParams(self.scale, self.zero_point),
                                                     self.quantizer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        y = F.linear(x, self.weight().to(x.dtype), self.bias)
        return y if self.output_quantizer is None else self.output_quantizer(y)

    def nbytes(self) -> dict[str, int]:
        """Bytes as stored: ``codes`` (packed), ``params`` (scales, zero points), ``bias``, and ``total``."""
        sizes = {"codes": self.packed.numel(),
                 "params": QParams(self.scale, self.zero_point).nbytes,
                 "bias": 0 if self.bias is None else self.bias.numel() * self.bias.element_size()}
        return {**sizes, "total": sum(sizes.values())}

    def extra_repr(self) -> str:
        store = "base-3, 5 per byte" if self.container == "base3" else f"{self.width} bits per code"
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.quantizer!r}, {store}"
