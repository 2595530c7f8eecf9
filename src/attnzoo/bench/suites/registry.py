"""The registry-wide benchmark: one workload per registered variant, every implementation of it.

Family-agnostic: nothing here knows a mechanism. Each variant's workload is its test spec's
``benchmark_case`` (:class:`attnzoo.testing.OpTestSpec`; by default the largest of its test cases by number of
tokens), built by the spec's own ``make_inputs`` in float32 on the benchmark's device with the spec's options.
Every implementation of the variant is a case; the ``reference`` implementation (the dense oracle) is the
baseline, so the speed-up columns are against it. An implementation that cannot run on the device (its
declared capabilities, or a :class:`~attnzoo.registry.NotSupportedError` raised by the call itself) is a
skipped row with the reason; so is a missing backward. The error column is against the float64 reference on
the same inputs (the reference row therefore shows its own float32 round-off).

Useful FLOPs have no registry-wide count (each mechanism does different work), so these rows report times,
memory and errors but no GFLOP/s. Subsets: ``full`` and ``compare`` time every variant's benchmark case;
``quick`` (a smoke run) times each spec's gradcheck-sized ``tiny_case`` and skips the compiled
implementations (:data:`COMPILED`, several seconds of ``torch.compile`` per shape) with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

import torch

from attnzoo.bench.case import Case, Inputs, Workload
from attnzoo.bench.ours import DEVICE, device_type
from attnzoo.registry import CallFacts, Implementation, Variant, get_variant, variants
from attnzoo.testing import OpTestSpec, get_spec

SUITE = "all"
"""The suite's key in :data:`attnzoo.bench.suites.SUITES` (``attnzoo bench --family all``)."""
SUBSETS = ("full", "compare", "quick")
COMPILED = frozenset({"flex"})
"""Implementations that compile per shape (``torch.compile(flex_attention)``); not run by the ``quick`` subset."""
BASELINE = "reference"


def case_tokens(case: Mapping[str, Any]) -> int:
    """Tokens of a spec case: the product of its ``grid``, else its ``length`` (1 if it has neither)."""
    if "grid" in case:
        return math.prod(case["grid"])
    return int(case.get("length", 1))


def _size(case: Mapping[str, Any]) -> tuple[int, int]:
    """Order of "largest": tokens first, then batch x heads x head dim (or channels)."""
    width = case.get("head_dim", case.get("channels", 1))
    return case_tokens(case), case.get("batch", 1) * case.get("heads", 1) * width


def benchmark_case(spec: OpTestSpec) -> Mapping[str, Any]:
    """The spec's ``benchmark_case``, or the largest of its ``cases`` by number of tokens (the first on a tie
    of tokens and width)."""
    if spec.benchmark_case is not None:
        return spec.benchmark_case
    return max(spec.cases, key=_size)


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _first(result: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The op's main output (ops with ``output_final_state`` also return states)."""
    return result[0] if isinstance(result, tuple) else result


def _workload(variant: Variant, spec: OpTestSpec, case: Mapping[str, Any], which: str, device: str) -> Workload:
    tokens, batch, heads = case_tokens(case), case.get("batch", 1), case.get("heads", 1)
    options = spec.options(case)
    size = "x".join(map(str, case["grid"])) if "grid" in case else str(tokens)

    def make_inputs(generator: torch.Generator) -> Inputs:
        return spec.make_inputs(case, torch.float32, device, generator)

    def reference(inputs: Inputs) -> torch.Tensor:
        wide = {name: t.double() if t.is_floating_point() else t for name, t in inputs.items()}
        return _first(variant.op(**wide, **options, impl=BASELINE)).float()

    return Workload(
        name=f"{variant.name} {size} b{batch}", family=variant.family, variant=variant.name, series=variant.name,
        shape={**{key: _json(value) for key, value in case.items()}, "case": which}, tokens=tokens,
        score_entries=batch * heads * tokens**2, flops=0.0, make_inputs=make_inputs, reference=reference,
        device=device)


def _reasons(implementation: Implementation, device: str, needs_grad: bool) -> list[str]:
    """What the declared capabilities already say against a float32 call on ``device`` (the options' own
    limits, causal or dilation say, are found by the call itself)."""
    facts = CallFacts(device=device_type(device), dtype=torch.float32, needs_grad=needs_grad, head_dim=0)
    return implementation.not_supported_reasons(facts)


def _case(workload: Workload, variant: Variant, implementation: Implementation, options: Mapping[str, Any],
          subset: str, device: str) -> Case:
    impl = implementation.name

    def forward(inputs: Inputs, _: Any) -> torch.Tensor:
        return _first(variant.op(**inputs, **options, impl=impl))

    forward_reasons = _reasons(implementation, device, needs_grad=False)
    backward_reasons = [r for r in _reasons(implementation, device, needs_grad=True) if r not in forward_reasons]
    skip = f"NotSupportedError: {impl}: " + "; ".join(forward_reasons) if forward_reasons else None
    if skip is None and subset == "quick" and impl in COMPILED:
        skip = f"quick subset: {impl} compiles per shape (seconds each); run without --quick to time it"
    backward_skip = f"NotSupportedError: {impl}: " + "; ".join(backward_reasons) if backward_reasons else None
    return Case(workload, impl, forward, baseline=impl == BASELINE, skip=skip, backward_skip=backward_skip,
                note=implementation.description)


def variant_cases(variant: Variant, subset: str = "full", device: str = DEVICE) -> list[Case]:
    """Every implementation of ``variant`` on its benchmark case (``tiny_case`` for ``quick``), reference
    first."""
    spec = get_spec(variant.name)
    case, which = ((spec.tiny_case, "tiny_case") if subset == "quick" else
                   (benchmark_case(spec), "benchmark_case" if spec.benchmark_case is not None else "largest case"))
    workload = _workload(variant, spec, case, which, device)
    options = spec.options(case)
    ordered = sorted(variant.implementations.values(), key=lambda i: i.name != BASELINE)
    return [_case(workload, variant, implementation, options, subset, device) for implementation in ordered]


def resized_cases(name: str, overrides: Mapping[str, Any], reference_limit: int, device: str = DEVICE) -> list[Case]:
    """Every implementation of variant ``name`` on its benchmark case with ``overrides`` (e.g. a longer ``grid``
    and the segment that suits it): a scaling series beside the registry row. The dense reference (the baseline)
    is skipped, with the reason, when the workload's ``B · H · N²`` score entries exceed ``reference_limit``."""
    variant, spec = get_variant(name), get_spec(name)
    case = {**benchmark_case(spec), **overrides}
    workload = _workload(variant, spec, case, f"benchmark_case with {overrides}", device)
    options = spec.options(case)
    ordered = sorted(variant.implementations.values(), key=lambda i: i.name != BASELINE)
    cases = [_case(workload, variant, implementation, options, "full", device) for implementation in ordered]
    if workload.score_entries > reference_limit:
        cases = [replace(c, skip=f"reference not timed: B*H*N^2 = {workload.score_entries:.2e} > "
                               f"{reference_limit:.2e} (the tests check the fast path against it)")
                 if c.impl == BASELINE else c for c in cases]
    return cases


def registry_cases(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE,
                   family: str | None = None) -> list[Case]:
    """The cases of every registered variant (of ``family``, if given) for ``subset`` (``"full"``,
    ``"compare"`` or ``"quick"``) on ``device``; ``impls`` keeps only those implementations (and the
    reference, the baseline)."""
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r}; expected one of {sorted(SUBSETS)}")
    cases = [case for variant in variants(family) for case in variant_cases(variant, subset, device)]
    return [case for case in cases if impls is None or case.baseline or case.impl in impls]


def family_suite(family: str | None) -> Callable[..., list[Case]]:
    """A suite function (``SUITES`` signature) of :func:`registry_cases` for one family (``None``: all)."""

    def suite(subset: str = "full", impls: Collection[str] | None = None, device: str = DEVICE) -> list[Case]:
        return registry_cases(subset, impls, device, family)

    suite.__doc__ = f"The registry-wide benchmark of {'every family' if family is None else f'family {family!r}'}."
    return suite
