"""Run a compare :class:`~attnzoo.compare.plan.Plan`: the quality jobs on worker processes, then the speed jobs
in this process, one progress bar over the planned seconds for both.

Engines for the quality jobs (each job is independent and deterministic given its seed and thread count):

* ``local`` (default): ``workers`` processes of this machine (``concurrent.futures`` with the ``spawn`` start
  method), each job on ``threads`` intra-op threads, chosen by the caller so that ``workers x threads`` does not
  exceed the cores; one worker runs the jobs in this process.
* ``submitit`` (optional extra ``attnzoo[cluster]``): each job an array task of a Slurm cluster
  (``submitit.AutoExecutor``; without Slurm it falls back to submitit's local executor, which starts every job at
  once: use ``local`` on one machine).

Speed jobs always run here, after every training job has finished, so no timing runs beside training. Every
finished job's result is cached at once (an interrupted run keeps it) and its wall time goes to the cost book.
The bar's ETA is the planned seconds still to run at the rate planned seconds have been getting done, so it
corrects itself when the estimates are off by a constant factor.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnzoo.bench.cache import RowCache
from attnzoo.compare.cache import QualityCache
from attnzoo.compare.costs import CostBook
from attnzoo.compare.jobs import QualityJob, SpeedJob, run_quality_job
from attnzoo.compare.pace import Pace, trim
from attnzoo.compare.plan import Plan, Planned

ENGINES = ("local", "submitit")


@dataclass
class Outcome:
    """What a run produced: one row per quality job (job fields added), the speed run's document, and the
    measured wall seconds of each phase."""

    quality_rows: list[dict[str, Any]] = field(default_factory=list)
    speed_doc: dict[str, Any] | None = None
    quality_s: float = 0.0
    speed_s: float = 0.0
    dropped: list[Planned] = field(default_factory=list)
    """Jobs the run dropped to stay in its budget (:mod:`.pace`)."""
    slowdown: float = 1.0
    """Measured over estimated seconds of the jobs that ran."""


def submitit_available() -> bool:
    """Whether the optional submitit engine can be used here."""
    import importlib.util

    return importlib.util.find_spec("submitit") is not None


def check_engine(engine: str, workers: int, threads: int) -> None:
    """``ValueError`` for an unknown engine or a worker/thread count below 1; ``ImportError`` naming the extra
    when submitit is asked for and missing (all before anything runs)."""
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine!r}: expected one of {list(ENGINES)}")
    for flag, value in (("--workers", workers), ("--threads-per-job", threads)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{flag} {value!r}: expected an integer >= 1")
    if engine == "submitit" and not submitit_available():
        raise ImportError("--engine submitit needs submitit, an optional extra: pip install 'attnzoo[cluster]'")


def _row(planned: Planned, row: dict[str, Any]) -> dict[str, Any]:
    job = planned.job
    assert isinstance(job, QualityJob)
    return {"task": job.task.name, "setting": job.setting, "family": job.family, **row,
            **({"seq_len": job.task.seq_len, "num_kv_pairs": job.task.num_kv_pairs} if job.task.name == "mqar"
               else {})}


@contextmanager
def _bar(total: float, progress: bool) -> Iterator[Any]:
    try:
        from tqdm.auto import tqdm  # optional extra [progress]
    except ImportError as error:
        raise ImportError("progress bars need tqdm, an optional extra: pip install 'attnzoo[progress]'") from error
    with tqdm(total=round(total, 1), desc="compare", unit="s", disable=not progress, dynamic_ncols=True,
              bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} planned s "
                         "[elapsed {elapsed}, ETA {remaining}] {postfix}") as bar:
        yield bar


def run_plan(plan: Plan, *, out_dir: Path, engine: str = "local", threads: int = 1,
             quality_cache: QualityCache | None = None, row_cache: RowCache | None = None,
             costs: CostBook | None = None, bench_settings: Any = None, progress: bool = True,
             pace: Pace | None = None) -> Outcome:
    """Run ``plan`` (quality jobs on ``plan.workers`` workers of ``engine`` at ``threads`` threads each, then the
    speed jobs with ``bench_settings``), caching every result as it arrives; with a ``pace`` holding the
    budget, jobs still waiting are dropped when the measured pace says they would not fit."""
    outcome = Outcome()
    pace = pace or Pace(plan.budget_s)
    quality = plan.quality()
    speed = plan.speed()
    speed_left = sum(p.estimate_s for p in speed)
    total = sum(p.estimate_s for p in quality) / plan.workers + speed_left
    with _bar(total, progress) as bar:
        start = time.perf_counter()
        waiting = []
        for planned in quality:
            found = None if quality_cache is None else quality_cache.lookup(planned.job, threads)
            if found is None:
                waiting.append(planned)
            else:
                outcome.quality_rows.append(_row(planned, found))

        def remaining(queue: list[Planned]) -> float:
            return sum(p.estimate_s for p in queue) / plan.workers + speed_left

        def next_jobs(free: int) -> list[Planned]:
            outcome.dropped += trim(waiting, pace, remaining)
            taken = waiting[:free]
            del waiting[:free]
            return taken

        def finished(planned: Planned, row: dict[str, Any]) -> None:
            row = {**row, "provenance": "measured now"}
            if quality_cache is not None:
                quality_cache.save(planned.job, threads, row)
            if costs is not None:
                costs.record(planned.job, row["job_s"])
            pace.finished(planned.estimate_s, row["job_s"])
            outcome.quality_rows.append(_row(planned, row))
            bar.set_postfix_str(planned.job.label)
            bar.update(planned.estimate_s / plan.workers)

        if engine == "submitit":
            _submitit(next_jobs(len(waiting)), out_dir / "runs", plan.workers, threads, finished)
        else:
            _local(next_jobs, out_dir / "runs", plan.workers, threads, finished)
        outcome.quality_s = time.perf_counter() - start
        start = time.perf_counter()
        if speed:
            outcome.speed_doc, dropped = _run_speed(speed, bench_settings, row_cache, costs, bar, pace)
            outcome.dropped += dropped
        outcome.speed_s = time.perf_counter() - start
    outcome.slowdown = pace.slowdown
    return outcome


def _run_dir(root: Path, planned: Planned) -> str:
    job = planned.job
    assert isinstance(job, QualityJob)
    return str(root / job.setting.replace(" ", "_") / job.mixer)


Finished = Callable[[Planned, dict[str, Any]], None]
NextJobs = Callable[[int], list[Planned]]


def _local(next_jobs: NextJobs, root: Path, workers: int, threads: int, finished: Finished) -> None:
    """The ``local`` engine: in this process for one worker, else a ``spawn`` process pool kept ``workers``
    jobs full (each new job asked of ``next_jobs`` when one finishes, so the budget can still drop it)."""
    if workers == 1:
        import torch

        previous = torch.get_num_threads()
        try:
            while batch := next_jobs(1):
                finished(batch[0], run_quality_job(batch[0].job, _run_dir(root, batch[0]), threads))
        finally:
            torch.set_num_threads(previous)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                initializer=_die_with_parent) as pool:
        running: dict[concurrent.futures.Future, Planned] = {}
        try:
            while True:
                for planned in next_jobs(workers - len(running)):
                    running[pool.submit(run_quality_job, planned.job, _run_dir(root, planned), threads)] = planned
                if not running:
                    return
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    finished(running.pop(future), future.result())
        except BaseException:
            for future in running:
                future.cancel()
            raise


def _die_with_parent() -> None:
    """In a worker: ask Linux to end this process when the compare process dies (killed, not only interrupted),
    so no orphaned training job keeps the cores busy; elsewhere a no-op."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _submitit(pending: Sequence[Planned], root: Path, workers: int, threads: int, finished: Finished) -> None:
    """The ``submitit`` engine: one array task per job (``workers`` at a time on Slurm), polled until done."""
    import submitit

    executor = submitit.AutoExecutor(folder=root / "submitit")
    executor.update_parameters(cpus_per_task=threads, timeout_min=120, slurm_array_parallelism=workers)
    jobs = executor.map_array(run_quality_job, [p.job for p in pending], [_run_dir(root, p) for p in pending],
                              [threads] * len(pending))
    waiting = dict(zip(jobs, pending))
    while waiting:
        for job in [j for j in waiting if j.done()]:
            finished(waiting.pop(job), job.result())
        time.sleep(0.5)


def _run_speed(speed: Sequence[Planned], bench_settings: Any, row_cache: RowCache | None, costs: CostBook | None,
               bar: Any, pace: Pace) -> tuple[dict[str, Any], list[Planned]]:
    """Every case of the speed jobs in one benchmark run (one GEMM peak, one machine record); each job's cost
    is the sum of its cases' wall times; before each job the pace decides whether it still fits (a job it drops
    leaves no row)."""
    from attnzoo.bench import Settings, run_cases

    owner = {id(case): planned for planned in speed for case in planned.job.cases}
    left = {id(planned): len(planned.job.cases) for planned in speed}
    spent = {id(planned): 0.0 for planned in speed}
    queue = list(speed)
    dropped: list[Planned] = []

    def skip(case: Any) -> bool:
        planned = owner[id(case)]
        if planned.job.cases[0] is case:  # a job's first case: drop what no longer fits, lowest priority first
            dropped.extend(trim(queue, pace, lambda waiting: sum(p.estimate_s for p in waiting)))
            if planned in queue:
                queue.remove(planned)
        return any(planned is p for p in dropped)

    def on_row(case: Any, row: Any, seconds: float) -> None:
        planned = owner[id(case)]
        spent[id(planned)] += seconds
        left[id(planned)] -= 1
        if left[id(planned)] == 0:
            job = planned.job
            assert isinstance(job, SpeedJob)
            if costs is not None and planned.estimate_s > 0:
                costs.record(job, spent[id(planned)])
            pace.finished(planned.estimate_s, spent[id(planned)])
            bar.set_postfix_str(job.label)
            bar.update(planned.estimate_s)

    cases = [case for planned in speed for case in planned.job.cases]
    doc = run_cases(cases, bench_settings or Settings(), progress=False, cache=row_cache, on_row=on_row, skip=skip)
    return doc, dropped
