"""Run benchmark cases: per case the set-up, the first call, a profiled warm-up call for peak memory, then
timed repeats, forward and forward + backward separately, and the error against the workload's reference.

A case that cannot run becomes a row with its reason (also when the call itself raises the registry's
:class:`~attnzoo.registry.NotSupportedError`: a "skipped" row with that message); one that raises anything else
becomes a "failed" row with the error, and the run goes on. On CUDA every timed call ends with a synchronize.

With a ``cache`` (:class:`~attnzoo.bench.cache.RowCache`), each measured row is stored under a hash of everything
it depends on (the implementation's source, torch version, machine kind, threads, device, workload and settings;
see :mod:`attnzoo.bench.cache`), and a later run reuses a row whose key matches instead of measuring it: each
row's ``provenance`` says "measured now" or "reused from <date> on <CPU>". Interrupting a run and rerunning it
therefore resumes where it stopped. The GEMM peak is measured every run, and the derived figures (GFLOP/s,
share of peak, ratios) are recomputed from it and this run's rows.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from attnzoo.bench.cache import MEASURED_NOW, RowCache
from attnzoo.bench.case import Case, Inputs
from attnzoo.bench.machine import describe_machine, gemm_peak_gflops
from attnzoo.bench.memory import peak_allocated_bytes
from attnzoo.bench.results import CaseResult, ModeResult, add_derived, document
from attnzoo.bench.timing import seconds, time_calls
from attnzoo.registry import NotSupportedError

RECOMPILE_LIMIT = 256
"""Each benchmarked shape and mask is a new compiled FlexAttention graph; past torch's default limit of 8,
torch silently falls back to eager, so the runner raises it."""


@dataclass(frozen=True)
class Settings:
    """How long to measure: at least ``min_repeats``, at most ``max_repeats`` timed calls, stopping after
    ``target_s`` seconds; ``cold_compile`` runs with an empty inductor cache, so first calls include the full
    compile rather than a load from an on-disk cache of an earlier run."""

    min_repeats: int = 3
    max_repeats: int = 25
    target_s: float = 1.0
    cold_compile: bool = True


@contextlib.contextmanager
def _compile_environment(cold: bool) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT))
        if cold:
            from torch._inductor.utils import fresh_inductor_cache

            stack.enter_context(fresh_inductor_cache())
        yield


def _synchronized(call: Callable[[], object], device: str) -> Callable[[], object]:
    """``call`` followed by a device synchronize on CUDA (so a timed call includes its kernels); as is on CPU."""
    if torch.device(device).type != "cuda":
        return call

    def synced() -> object:
        result = call()
        torch.cuda.synchronize(device)
        return result

    return synced


def _measure(call: Callable[[], object], settings: Settings, device: str = "cpu") -> ModeResult:
    call = _synchronized(call, device)
    first_s = seconds(call)
    peak = peak_allocated_bytes(call, device)
    timing = time_calls(call, min_repeats=settings.min_repeats, max_repeats=settings.max_repeats,
                        target_s=settings.target_s)
    return ModeResult(status="ok", first_call_ms=1e3 * first_s, median_ms=timing.median_ms, p10_ms=timing.p10_ms,
                      p90_ms=timing.p90_ms, repeats=timing.repeats, peak_mb=peak / 2**20)


def _failure(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def _not_supported(error: NotSupportedError) -> str:
    """The whole message of a :class:`NotSupportedError` on one line (its reasons follow the first line)."""
    return "NotSupportedError: " + " ".join(line.strip() for line in str(error).splitlines() if line.strip())


class _References:
    """Reference outputs, computed once per workload and shared by its cases (which run one after the other).
    Only the latest is kept: each is as large as the workload's output and costs O(N^2) to compute."""

    def __init__(self) -> None:
        self._cache: dict[str, torch.Tensor] = {}

    def error(self, case: Case, inputs: Inputs, output: torch.Tensor) -> tuple[float | None, str | None]:
        workload = case.workload
        if case.reference is not None:
            with torch.no_grad():
                expected = case.reference(inputs)
        elif workload.reference is None:
            return None, workload.reference_skip
        else:
            if workload.name not in self._cache:
                with torch.no_grad():
                    self._cache = {workload.name: workload.reference(inputs)}
            expected = self._cache[workload.name]
        return (output - expected).abs().max().item(), None


def _forward_backward(case: Case, native: Inputs, prepared: Any, output: torch.Tensor) -> Callable[[], None]:
    leaves = {name: t.detach().clone().requires_grad_(t.is_floating_point()) for name, t in native.items()}
    grad = torch.randn(output.shape, generator=torch.Generator().manual_seed(1)).to(output.device, output.dtype)

    def step() -> None:
        for leaf in leaves.values():
            leaf.grad = None
        case.forward(leaves, prepared).backward(grad)

    return step


def measure_case(case: Case, settings: Settings, references: _References) -> CaseResult:
    """Every column of one case; skipped or failed rows carry their reason."""
    if case.skip:
        return CaseResult.of(case, "skipped", case.skip)
    row = CaseResult.of(case, "ok")
    try:
        prepared = None
        if case.prepare is not None:
            holder: list[Any] = []
            row.setup_ms = 1e3 * seconds(lambda: holder.append(case.prepare()))
            prepared = holder[0]
        inputs = case.workload.make_inputs(torch.Generator().manual_seed(0))
        native = case.to_layout(inputs)

        def forward() -> torch.Tensor:
            with torch.no_grad():
                return case.forward(native, prepared)

        row.modes["forward"] = _measure(forward, settings, case.workload.device)
        output = forward()
        row.max_abs_error, row.error_note = references.error(case, inputs, case.from_layout(output))
    except NotSupportedError as error:
        return CaseResult.of(case, "skipped", _not_supported(error))
    except Exception as error:  # noqa: BLE001 - a failing case becomes a row, the run goes on
        return CaseResult.of(case, "failed", _failure(error))
    if case.backward_skip:
        row.modes["forward_backward"] = ModeResult(status="skipped", reason=case.backward_skip)
        return row
    try:
        row.modes["forward_backward"] = _measure(_forward_backward(case, native, prepared, output), settings,
                                                 case.workload.device)
    except NotSupportedError as error:
        row.modes["forward_backward"] = ModeResult(status="skipped", reason=_not_supported(error))
    except Exception as error:  # noqa: BLE001
        row.modes["forward_backward"] = ModeResult(status="failed", reason=_failure(error))
    return row


def _row(case: Case, settings: Settings, references: _References, cache: RowCache | None) -> CaseResult:
    """The case's row: from ``cache`` when its key matches, else measured (and stored there)."""
    if case.skip or cache is None:
        row = measure_case(case, settings, references)
        row.provenance = MEASURED_NOW
        return row
    key = cache.key(case, asdict(settings))
    row = cache.lookup(key)
    if row is None:
        row = measure_case(case, settings, references)
        cache.store(key, row)
        row.provenance = MEASURED_NOW
    return row


def run_cases(cases: Sequence[Case], settings: Settings = Settings(), *, progress: bool = True,
              cache: RowCache | None = None, on_row: Callable[[Case, CaseResult, float], None] | None = None,
              skip: Callable[[Case], bool] | None = None) -> dict[str, Any]:
    """Measure the GEMM peak, then every case (reusing the rows ``cache`` has for the same key, storing the
    others there); returns the run's JSON document (see :mod:`.results`). ``on_row(case, row, seconds)`` is
    called as each case finishes, with its wall time (``attnzoo compare`` keeps it as the case's cost); a case
    for which ``skip(case)`` is true is neither run nor reported (compare's budget dropped it)."""
    machine = describe_machine()
    machine["compile_cache"] = "fresh (cold) inductor cache" if settings.cold_compile else "as found"
    machine["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    peak = gemm_peak_gflops()
    references = _References()
    rows = []
    with _compile_environment(settings.cold_compile):
        try:
            from tqdm import tqdm  # optional extra [progress]
        except ImportError as error:
            raise ImportError("progress bars need tqdm, an optional extra: pip install 'attnzoo[progress]'") from error
        bar = tqdm(cases, desc="bench", unit="case", disable=not progress)
        for case in bar:
            if skip is not None and skip(case):
                continue
            bar.set_postfix_str(f"{case.workload.name} [{case.impl}]")
            start = time.perf_counter()
            rows.append(_row(case, settings, references, cache))
            if on_row is not None:
                on_row(case, rows[-1], time.perf_counter() - start)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["cache"] = "none" if cache is None else cache.summary()
    add_derived(rows, peak)
    return document(machine, peak, asdict(settings), rows)
