"""The CNN-module benchmark (``attnzoo bench --family cnn``): every variant of the ``cnn`` family on its test
spec's benchmark case (a ``(B, C, H, W)`` feature map of the size the papers place the modules at: 64 channels
at 56 x 56, batch 1), every implementation of it, beside the plain convolution the module augments: a 3x3
convolution of the same channels (``F.conv2d``, C -> C, with its weight as an input, so its backward computes
the weight gradient as the modules' do). That convolution is the baseline: the ratio columns say what the
module costs on top of the layer it is added to. The error column is against the module's float64 reference
(the convolution's against a float64 convolution). The ``quick`` subset times each spec's gradcheck-sized
``tiny_case`` (a smoke run)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from attnzoo.bench.case import Case, Inputs, Workload
from attnzoo.bench.ours import DEVICE
from attnzoo.bench.suites.registry import BASELINE, SUBSETS, _reasons, benchmark_case
from attnzoo.registry import Implementation, Variant, variants
from attnzoo.testing import get_spec

FAMILY = "cnn"
CONV = "conv3x3"
"""The baseline row's implementation name: the plain 3x3 convolution of the module's channels."""
CONV_WEIGHT = "conv3x3_weight"
"""The baseline's weight among the workload's inputs (the module rows leave it out of their call)."""


def _conv3x3(inputs: Inputs) -> torch.Tensor:
    return F.conv2d(inputs["x"], inputs[CONV_WEIGHT], padding=1)


def _workload(variant: Variant, case: Mapping[str, Any], which: str, device: str) -> Workload:
    spec = get_spec(variant.name)
    options = spec.options(case)
    b, c, (h, w) = case["batch"], case["channels"], case["grid"]

    def make_inputs(generator: torch.Generator) -> Inputs:
        inputs = spec.make_inputs(case, torch.float32, device, generator)
        weight = torch.randn(c, c, 3, 3, generator=generator, dtype=torch.float64) / math.sqrt(9 * c)
        return {**inputs, CONV_WEIGHT: weight.to(dtype=torch.float32, device=device)}

    def reference(inputs: Inputs) -> torch.Tensor:
        wide = {n: t.double() for n, t in inputs.items() if n != CONV_WEIGHT}
        return variant.op(**wide, **options, impl=BASELINE).float()

    return Workload(name=f"{variant.name} {c}x{h}x{w} b{b}", family=FAMILY, variant=variant.name,
                    series=variant.name, shape={**{k: list(v) if isinstance(v, tuple) else v for k, v in case.items()},
                                                "case": which}, tokens=h * w, score_entries=b * h * w, flops=0.0,
                    make_inputs=make_inputs, reference=reference, device=device)


def _module_case(workload: Workload, variant: Variant, implementation: Implementation, options: Mapping[str, Any],
                 device: str) -> Case:
    impl = implementation.name

    def forward(inputs: Inputs, _: Any) -> torch.Tensor:
        return variant.op(**{n: t for n, t in inputs.items() if n != CONV_WEIGHT}, **options, impl=impl)

    forward_reasons = _reasons(implementation, device, needs_grad=False)
    backward_reasons = [r for r in _reasons(implementation, device, needs_grad=True) if r not in forward_reasons]
    return Case(workload, impl, forward,
                skip=f"NotSupportedError: {impl}: " + "; ".join(forward_reasons) if forward_reasons else None,
                backward_skip=f"NotSupportedError: {impl}: " + "; ".join(backward_reasons) if backward_reasons
                else None, note=implementation.description)


def _conv_case(workload: Workload) -> Case:
    def reference(inputs: Inputs) -> torch.Tensor:
        return _conv3x3({n: inputs[n].double() for n in ("x", CONV_WEIGHT)}).float()

    return Case(workload, CONV, lambda inputs, _: _conv3x3(inputs), reference=reference, baseline=True,
                note="the plain 3x3 convolution C -> C the module augments (F.conv2d, no bias)")


def cnn_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
    """Per ``cnn`` variant: the 3x3 convolution (the baseline) and every implementation of the module on the
    spec's benchmark case (``tiny_case`` for ``quick``) on ``device``; ``impls`` keeps only those implementations
    (and the baseline)."""
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r}; expected one of {sorted(SUBSETS)}")
    cases = []
    for variant in variants(FAMILY):
        spec = get_spec(variant.name)
        case, which = (spec.tiny_case, "tiny_case") if subset == "quick" else (benchmark_case(spec), "benchmark_case")
        workload = _workload(variant, case, which, device)
        ordered = sorted(variant.implementations.values(), key=lambda i: i.name != BASELINE)
        cases += [_conv_case(workload), *(_module_case(workload, variant, i, spec.options(case), device)
                                          for i in ordered if impls is None or i.name in impls)]
    return cases
