"""Dispatch: :func:`select_implementation` (what ``impl=`` runs), :func:`explain` (why), and the note on half
precision on CPUs without AVX-512. No logging or other side effect on the traced path."""

from __future__ import annotations

import warnings

import torch

from attnzoo.registry.capabilities import CallFacts, Implementation, NotSupportedError
from attnzoo.registry.variants import get_variant

HALF_PRECISION = frozenset({torch.float16, torch.bfloat16})
SLOW_HALF_CPU_CAPABILITIES = frozenset({"DEFAULT", "AVX2"})
"""torch CPU kernel levels (``torch.backends.cpu.get_cpu_capability()``) on which bf16/fp16 matrix multiplies
fall back to slow paths. Measured with ``attnzoo bench --op neighborhood_attention_2d --batch 1 --heads 4 --grid
64 64 --head-dim 32 --opt kernel_size=7 --opt rpb=False --impl tiled --backward --dtype bfloat16`` (each row
against float32 in the same run; ``benchmarks/results/dtype/``): 28x slower forward and 15x slower forward +
backward under AVX2 (``ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2`` on an AMD EPYC), 0.45x / 1.06x with
AVX-512 on the same host."""
_WARNED_HALF: set[tuple[str, torch.dtype]] = set()


def slow_half_precision(facts: CallFacts) -> str | None:
    """Why this call's dtype runs much slower than float32 here (half precision on a CPU without AVX-512), or
    ``None``. ``auto`` does not upcast behind the caller's back: it says so, once per variant and dtype, as a
    warning (and :func:`explain` says so every time)."""
    if facts.device != "cpu" or facts.dtype not in HALF_PRECISION:
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in SLOW_HALF_CPU_CAPABILITIES:
        return None
    return (f"{facts.dtype} on this CPU (torch kernels at {capability}, no AVX-512) runs matrix multiplies far "
            "slower than float32 (measured 15-28x for 2-D neighborhood attention): cast the inputs to float32 "
            "for speed")


def select_implementation(variant_name: str, impl: str, facts: CallFacts) -> Implementation:
    """The implementation to run: ``impl`` itself if it can run the call, or with ``"auto"`` the first that can.

    Raises :class:`NotSupportedError` naming every reason otherwise, and ``ValueError`` for an unknown name.
    """
    variant = get_variant(variant_name)
    if impl != "auto" and impl not in variant.implementations:
        raise ValueError(f"impl={impl!r} is not an implementation of {variant_name}; "
                         f"expected 'auto' or one of {list(variant.implementations)}")
    candidates = list(variant.implementations.values()) if impl == "auto" else [variant.implementations[impl]]
    reasons = {c.name: c.not_supported_reasons(facts) for c in candidates}
    if impl == "auto":
        for c in candidates:
            passed_over = c.auto_passes_over(facts)
            if not reasons[c.name] and passed_over:
                reasons[c.name] = [passed_over]
    for candidate in candidates:
        if not reasons[candidate.name]:
            _warn_slow_half(variant_name, facts)
            return candidate
    lines = "\n".join(f"  {name}: " + "; ".join(why) for name, why in reasons.items())
    raise NotSupportedError(f"{variant_name}: no implementation can run this call "
                            f"(impl={impl!r}, {facts}):\n{lines}")


def explain(variant_name: str, facts: CallFacts) -> str:
    """Which implementation ``impl="auto"`` picks for ``facts`` and why each other one cannot run or lost."""
    variant = get_variant(variant_name)
    lines, chosen = [], None
    for candidate in variant.implementations.values():
        why = candidate.not_supported_reasons(facts)
        passed_over = candidate.auto_passes_over(facts)
        if not why and passed_over:
            lines.append(f"  {candidate.name}: can run, but {passed_over}")
        elif why:
            lines.append(f"  {candidate.name}: cannot run: " + "; ".join(why))
        elif chosen is None:
            chosen = candidate.name
            lines.append(f"  {candidate.name}: CHOSEN (first in priority order that can run it)")
        else:
            lines.append(f"  {candidate.name}: can run, lower priority than {chosen}")
    slow = slow_half_precision(facts)
    if slow:
        lines.append(f"  note: {slow}")
    return f"{variant_name} for {facts}:\n" + "\n".join(lines)


def _warn_slow_half(variant_name: str, facts: CallFacts) -> None:
    """The :func:`slow_half_precision` warning, once per variant and dtype (never while compiling: no side
    effect on a traced path)."""
    if torch.compiler.is_compiling() or (variant_name, facts.dtype) in _WARNED_HALF:
        return
    slow = slow_half_precision(facts)
    if slow:
        _WARNED_HALF.add((variant_name, facts.dtype))
        warnings.warn(f"{variant_name}: {slow}", stacklevel=4)
