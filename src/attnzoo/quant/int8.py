"""Int8 matrix multiplies through PyTorch's own CPU kernels (torch 2.13).

- :func:`int8_linear` (W8A8): activations quantized per row (token) symmetric to int8 at each call, weights per
  output channel symmetric int8; ``torch._int_mm`` multiplies ``int8 × int8 → int32`` exactly, then
  ``y = acc · s_x s_wᵀ + b``. The integer accumulator equals the exact integer product (tested), so ``y`` equals the
  fake-quantized ``F.linear(x̂, Ŵ, b)`` up to float32 rounding.
- :func:`weight_only_int8_linear` (W8A16/32): ``torch._weight_int8pack_mm`` with float activations (float32 or
  16-bit only) and per-channel int8 weights.

:class:`Int8Linear` wraps either. Both are private ``torch._`` ops: present and exact in torch 2.13 on x86 CPUs,
not a stable API. Speed is measured, not assumed: ``examples/int8_matmul_timing.py`` times both against float32
``F.linear``. On the 2-core AVX-512 build machine (one thread, loaded) ``_int_mm`` made W8A8 2.5-6.5x faster
than float32 from 16 tokens up (the per-call activation quantisation included; about even at 1 token), while
``_weight_int8pack_mm`` ran 10-100x *slower* than float32: prefer W8A8, or dequantize, for weight-only int8.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from attnzoo.quant.granularity import Granularity
from attnzoo.quant.uniform import UniformQuantizer

INT8 = UniformQuantizer(8, symmetric=True, granularity=Granularity.per_row())
"""Symmetric int8 per row (``±127``): weights per output channel, activations per token."""

Int8Mode = Literal["dynamic", "weight_only"]


def quantize_int8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes int8 (M, K), scales (M,))`` of a 2-D float tensor, symmetric per row."""
    q = INT8.encode(x.detach())
    return q.codes.to(torch.int8), q.params.scale


def _check(x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor) -> None:
    if codes.dtype != torch.int8 or codes.dim() != 2:
        raise ValueError(f"weight codes have dtype {codes.dtype} and shape {tuple(codes.shape)}; expected int8 (out, in)")
    if x.shape[-1] != codes.shape[1]:
        raise ValueError(f"x has shape {tuple(x.shape)}: its last axis must be in_features = {codes.shape[1]}")
    if scale.shape != (codes.shape[0],):
        raise ValueError(f"weight scale has shape {tuple(scale.shape)}; expected ({codes.shape[0]},)")


def int8_linear(x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """W8A8 ``x Wᵀ + b`` through ``torch._int_mm`` (see the module docstring); ``x`` ``(..., in)``."""
    _check(x, codes, scale)
    rows = x.reshape(-1, x.shape[-1])
    x_codes, x_scale = quantize_int8_rows(rows)
    acc = torch._int_mm(x_codes, codes.t())
    y = acc.to(torch.float32) * (x_scale.to(torch.float32)[:, None] * scale.to(torch.float32)[None, :])
    if bias is not None:
        y = y + bias.to(torch.float32)
    return y.to(x.dtype).reshape(*x.shape[:-1], codes.shape[0])


def weight_only_int8_linear(x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor,
                            bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x Wᵀ + b`` with int8 ``W`` through ``torch._weight_int8pack_mm`` (``x`` float32 / 16-bit)."""
    _check(x, codes, scale)
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"x.dtype={x.dtype}: torch._weight_int8pack_mm takes float32, float16 or bfloat16")
    rows = x.reshape(-1, x.shape[-1])
    y = torch._weight_int8pack_mm(rows, codes, scale.to(x.dtype))
    if bias is not None:
        y = y + bias.to(x.dtype)
    return y.reshape(*x.shape[:-1], codes.shape[0])


class Int8Linear(nn.Module):
    """A linear layer with int8 per-channel weights and an integer kernel (see the module docstring).

    >>> layer = Int8Linear.from_linear(nn.Linear(64, 32))
    >>> layer(torch.randn(4, 64)).shape
    torch.Size([4, 32])
    """

    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                 mode: Int8Mode = "dynamic") -> None:
        super().__init__()
        if mode not in ("dynamic", "weight_only"):
            raise ValueError(f"mode={mode!r}: expected 'dynamic' (W8A8, torch._int_mm) or 'weight_only'")
        _check(torch.empty(0, codes.shape[1]), codes, scale)
        self.mode = mode
        self.register_buffer("codes", codes)
        self.register_buffer("scale", scale.to(torch.float32))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, mode: Int8Mode = "dynamic") -> Int8Linear:
        codes, scale = quantize_int8_rows(linear.weight.detach().float())
        return cls(codes, scale, linear.bias, mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = int8_linear if self.mode == "dynamic" else weight_only_int8_linear
        return kernel(x, self.codes, self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.codes.shape[1]}, out_features={self.codes.shape[0]}, mode={self.mode!r}"
