"""Result rows of a benchmark run and the figures derived from them (GFLOP/s, share of GEMM peak, ratios
against the baseline of the same workload), plus JSON save / load.

A run is a plain JSON document: ``machine``, ``gemm_peak_gflops``, ``conventions``, ``settings`` and ``rows``;
plots, tables and reports read that document, so they can be rebuilt from a saved file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attnzoo.bench.case import BACKWARD_FLOP_FACTOR, Case

MODES = ("forward", "forward_backward")
MODE_LABELS = {"forward": "fwd", "forward_backward": "fwd+bwd"}

CONVENTIONS = {
    "forward": "inference forward under torch.no_grad()",
    "forward_backward": "forward with inputs requiring grad, then backward of a fixed random output gradient",
    "flops": "useful FLOPs: forward = 4*B*H*D*(visible query-key pairs); forward+backward = "
             f"{BACKWARD_FLOP_FACTOR}x forward (backward = 2.5x forward); the same count for every "
             "implementation of a workload, whatever it computes and throws away",
    "gemm_peak": "median GFLOP/s of torch.mm on two fp32 2048x2048 matrices, measured in the same run",
    "timing": "first call timed alone (first_call_ms: compile, plan or mask building on first use), then one "
              "call under the profiler for memory (also the warm-up), then repeats: median and p10/p90",
    "setup": "setup_ms: the per-pattern set-up run before the first call (dense bool mask, Flex block mask, "
             "tile plan) where the implementation exposes it, elsewhere inside first_call_ms; near 0 when an "
             "earlier case with the same pattern (another batch size) already built and cached it",
    "peak_memory": "peak of live torch CPU allocations during one call, above what was live before it "
                   "(inputs and set-up results such as the dense mask excluded), from torch.profiler memory "
                   "events; allocations outside torch's allocator are not seen",
    "ratios": "speedup = baseline median / this median (above 1 = faster than the baseline); memory_ratio = "
              "this peak / baseline peak; baseline measured in the same run on the same inputs",
    "error": "max |output - reference| over all elements, reference = the registry's O(N^2) reference op in "
             "fp32 on the same inputs",
    "provenance": "measured now, or reused from the cache: a row measured earlier on the same machine kind (CPU "
                  "model, ISA, torch CPU capability), torch version, threads, device, workload, settings and "
                  "source of the implementation; derived figures (GFLOP/s, % peak, ratios) recomputed in this run",
}


@dataclass
class ModeResult:
    """One mode (forward, or forward + backward) of one case."""

    status: str  # "ok", "skipped" or "failed"
    reason: str | None = None
    first_call_ms: float | None = None
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    repeats: int = 0
    peak_mb: float | None = None
    gflops: float | None = None
    pct_gemm_peak: float | None = None
    speedup: float | None = None
    memory_ratio: float | None = None


@dataclass
class CaseResult:
    """One row: a case's identity, set-up time, error against the reference and both modes."""

    workload: str
    family: str
    variant: str
    series: str
    shape: dict[str, Any]
    tokens: int
    flops_forward: float
    impl: str
    baseline: bool
    note: str
    status: str
    reason: str | None = None
    setup_ms: float | None = None
    max_abs_error: float | None = None
    error_note: str | None = None
    modes: dict[str, ModeResult] = field(default_factory=dict)
    provenance: str | None = None
    """``"measured now"``, or ``"reused from <ISO date> on <CPU model>"`` for a row taken from the cache
    (:mod:`attnzoo.bench.cache`)."""

    @classmethod
    def of(cls, case: Case, status: str, reason: str | None = None) -> CaseResult:
        """A row for ``case`` with its identity filled in; every mode skipped (or failed) with ``reason``
        until measured."""
        w = case.workload
        return cls(workload=w.name, family=w.family, variant=w.variant, series=w.series, shape=dict(w.shape),
                   tokens=w.tokens, flops_forward=w.flops, impl=case.impl, baseline=case.baseline,
                   note=case.note, status=status, reason=reason,
                   modes={mode: ModeResult(status=status, reason=reason) for mode in MODES})


def add_derived(rows: list[CaseResult], gemm_peak_gflops: float) -> None:
    """Fill GFLOP/s, share of GEMM peak, speed-up and memory ratio against each workload's baseline."""
    baselines = {row.workload: row for row in rows if row.baseline}
    for row in rows:
        base = baselines.get(row.workload)
        for mode, result in row.modes.items():
            if result.status != "ok":
                continue
            flops = row.flops_forward * (BACKWARD_FLOP_FACTOR if mode == "forward_backward" else 1.0)
            if flops > 0:  # 0: the workload has no agreed count of useful FLOPs (no GFLOP/s reported)
                result.gflops = flops / (result.median_ms * 1e-3) / 1e9
                result.pct_gemm_peak = 100.0 * result.gflops / gemm_peak_gflops
            reference = base.modes[mode] if base is not None else None
            if reference is not None and reference.status == "ok":
                result.speedup = reference.median_ms / result.median_ms
                if reference.peak_mb:
                    result.memory_ratio = result.peak_mb / reference.peak_mb


def document(machine: dict[str, Any], gemm_peak_gflops: float, settings: dict[str, Any],
             rows: list[CaseResult]) -> dict[str, Any]:
    """The JSON document of a run."""
    return {"machine": machine, "gemm_peak_gflops": gemm_peak_gflops, "conventions": CONVENTIONS,
            "settings": settings, "rows": [asdict(row) for row in rows]}


def save(doc: dict[str, Any], path: Path) -> None:
    """Write the run as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def load(path: Path) -> dict[str, Any]:
    """Read a run written by :func:`save`."""
    return json.loads(Path(path).read_text())
