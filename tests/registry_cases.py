"""Helpers to run any registered variant on one of its test cases (used by the registry-wide contract tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from attnzoo.testing import OpTestSpec


def make_inputs(spec: OpTestSpec, case: Mapping[str, Any], dtype: torch.dtype = torch.float64,
                device: str = "cpu", seed: int = 0, requires_grad: bool = False) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = spec.make_inputs(case, dtype, device, generator)
    return {name: t.requires_grad_(requires_grad and t.is_floating_point()) for name, t in inputs.items()}


def outputs(result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Every tensor an op returned (the output, and final states where it returns them)."""
    return result if isinstance(result, tuple) else (result,)


def run(spec: OpTestSpec, case: Mapping[str, Any], inputs: Mapping[str, torch.Tensor], impl: str) -> torch.Tensor:
    """The op's main output (the first tensor it returns)."""
    return outputs(run_all(spec, case, inputs, impl))[0]


def run_all(spec: OpTestSpec, case: Mapping[str, Any], inputs: Mapping[str, torch.Tensor],
            impl: str) -> torch.Tensor | tuple[torch.Tensor, ...]:
    return spec.registered.op(**inputs, **spec.options(case), impl=impl)


def forward_backward(spec: OpTestSpec, case: Mapping[str, Any], inputs: Mapping[str, torch.Tensor], impl: str,
                     seed: int = 1) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """Every output and the gradients of ``sum_i <out_i, g_i>`` (fixed random cotangents ``g_i``, one per output,
    final states and attention weights included) with respect to every floating-point input (masks and
    ``cu_seqlens`` are not differentiable)."""
    outs = outputs(run_all(spec, case, inputs, impl))
    generator = torch.Generator().manual_seed(seed)
    cotangents = [torch.randn(o.shape, generator=generator, dtype=torch.float64).to(o.dtype) for o in outs]
    differentiable = {name: t for name, t in inputs.items() if t.is_floating_point()}
    grads = torch.autograd.grad(outs, list(differentiable.values()), cotangents, allow_unused=True)
    return outs, {name: torch.zeros_like(t) if g is None else g for (name, t), g in zip(differentiable.items(), grads)}


def case_id(case: Mapping[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items()).replace(" ", "")
