"""``attnzoo compare`` from its options to its report: check everything, plan within the budget, run, write.

Everything that can be wrong is checked before the first measurement: families, tasks, mixers (against every
task they would train on), implementations, the budget (against the smallest useful run), engine, workers,
the output and cache folders, and the data sets of the tasks that will train. Then the plan is printed (rows
per family, planned minutes), the jobs run (:mod:`.engine`) and the report is written: ``report.md`` with its
plots, ``quality.json`` (every quality row with its provenance), ``speed.json`` (the benchmark document) and
``plan.json`` (every job, its estimate and where it came from, chosen or left out).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from attnzoo.bench.cache import RowCache
from attnzoo.bench.report import Section, write_report
from attnzoo.compare.cache import QualityCache
from attnzoo.compare.costs import CostBook, calibrate, machine_id
from attnzoo.compare.engine import Outcome, check_engine, run_plan
from attnzoo.compare.jobs import Job, QualityJob, QualitySettings, check_families, quality_jobs, speed_jobs
from attnzoo.compare.pace import Pace
from attnzoo.compare.plan import Plan, make_plan
from attnzoo.compare.report import coverage, pick_lines, quality_task_sections, speed_family_sections

TITLE = "attnzoo compare: which attention should I use here?"


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class CompareOptions:
    """Everything ``attnzoo compare`` was asked (the CLI's flags)."""

    out: Path
    budget_s: float | None = 15 * 60.0
    families: tuple[str, ...] | None = None
    quality: QualitySettings = QualitySettings()
    mixers: tuple[str, ...] | None = None
    impls: tuple[str, ...] | None = None
    speed: bool = True
    workers: int | None = None
    threads_per_job: int | None = None
    engine: str = "local"
    cache: RowCache | None = None
    quality_cache: QualityCache | None = None
    cost_path: Path | None = None
    bench_settings: Any = None
    device: str = "cpu"
    progress: bool = True
    plan_only: bool = False
    write_seed: Path | None = None
    command: str | None = None


def workers_and_threads(options: CompareOptions) -> tuple[int, int]:
    """Training workers and threads per job: by default one single-threaded worker per core (small models train
    faster that way than one job on every core); never more workers x threads than cores."""
    cores = available_cores()
    threads = 1 if options.threads_per_job is None else options.threads_per_job
    workers = max(1, cores // max(threads, 1)) if options.workers is None else options.workers
    check_engine(options.engine, workers, threads)
    if workers * threads > cores:
        raise ValueError(f"--workers {workers} x --threads-per-job {threads} = {workers * threads} threads on "
                         f"{cores} cores; expected at most {cores} (jobs would oversubscribe the cores)")
    return workers, threads


def gather_jobs(options: CompareOptions) -> list[Job]:
    """Every job of the chosen families (quality jobs checked against their tasks, speed implementations
    checked against the suites)."""
    from attnzoo.cli import check_bench_arguments

    families = check_families(options.families)
    jobs: list[Job] = []
    if options.quality.tasks:
        if options.mixers is not None:
            _check_mixers(options.mixers)
        jobs += quality_jobs(families, options.quality, options.mixers)
    if options.speed:
        subset = "quick" if options.quality.quick else "compare"
        check_bench_arguments(options.impls, families, subset, options.device)
        jobs += speed_jobs(families, subset, options.device, options.impls)
    if not jobs:
        raise ValueError("nothing to run: no quality task and no speed benchmark chosen")
    return jobs


def _check_mixers(mixers: tuple[str, ...]) -> None:
    from attnzoo.models.architectures import mixer_variant
    from attnzoo.registry import get_variant

    for mixer in mixers:
        try:
            variant = get_variant(mixer_variant(mixer))
        except KeyError as error:
            raise ValueError(f"--mixers {mixer!r}: {error.args[0]}") from None
        if variant.layer_layout is not None and variant.layer_layout.channels_first:
            raise ValueError(f"--mixers {mixer!r}: a CNN attention module ({variant.layer_layout} in and out), not a "
                             f"token mixer: no quality task trains it as one (its speed rows come with --families "
                             f"{variant.family})")


def _cached(options: CompareOptions, threads: int):  # -> Callable[[Job], bool]
    settings = asdict(options.bench_settings) if options.bench_settings is not None else None

    def is_cached(job: Job) -> bool:
        if isinstance(job, QualityJob):
            cache = options.quality_cache
            return cache is not None and not cache.fresh and cache.store.path(cache.key(job, threads)).exists()
        cache = options.cache
        return (cache is not None and not cache.fresh and settings is not None
                and all(case.skip or cache.path(cache.key(case, settings)).exists() for case in job.cases))

    return is_cached


def _check_data(plan: Plan) -> None:
    """Load the data of every task that will train (a missing data set fails here, not mid-run); tasks whose
    rows all come from the cache are not loaded."""
    seen = set()
    for planned in plan.quality():
        job = planned.job
        if planned.source != "cached" and job.task.name not in seen:
            seen.add(job.task.name)
            replace(job.task).prepare()


def plan_json(plan: Plan) -> dict[str, Any]:
    def entry(planned: Any, chosen: bool) -> dict[str, Any]:
        job = planned.job
        return {"label": job.label, "family": job.family, "kind": job.kind, "tier": job.tier,
                "estimate_s": round(planned.estimate_s, 2), "estimate_from": planned.source, "chosen": chosen}

    return {"budget_s": plan.budget_s, "workers": plan.workers, "planned_wall_s": round(plan.wall_s, 1),
            "jobs": [entry(p, True) for p in plan.chosen] + [entry(p, False) for p in plan.left_out]}


def plan_summary(plan: Plan) -> str:
    """Rows per family chosen / left out and the planned minutes: printed before anything runs."""
    counts: dict[str, list[int]] = {}
    for planned in plan.chosen:
        counts.setdefault(planned.job.family, [0, 0])[0] += 1
    for planned in plan.left_out:
        counts.setdefault(planned.job.family, [0, 0])[1] += 1
    per_family = ", ".join(f"{family} {chosen}/{chosen + left}" for family, (chosen, left) in counts.items())
    budget = "no budget (--full)" if plan.budget_s is None else f"budget {plan.budget_s / 60:.1f} min"
    return (f"compare plan: {len(plan.chosen)} of {len(plan.chosen) + len(plan.left_out)} jobs ({per_family}); "
            f"planned {plan.wall_s / 60:.1f} min on {plan.workers} training worker(s), {budget}")


def compare(options: CompareOptions) -> Path | None:
    """Run ``attnzoo compare``; the report's path (``None`` with ``plan_only``)."""
    pace = Pace(options.budget_s)
    workers, threads = workers_and_threads(options)
    jobs = gather_jobs(options)
    costs = CostBook(options.cost_path, machine_id(threads), calibrate(threads))
    plan = make_plan(jobs, costs.estimate, options.budget_s, workers, _cached(options, threads))
    out = options.out
    (out / "plan.json").write_text(json.dumps(plan_json(plan), indent=1) + "\n")
    print(plan_summary(plan), flush=True)
    if options.plan_only:
        return None
    _check_data(plan)
    outcome = run_plan(plan, out_dir=out, engine=options.engine, threads=threads,
                       quality_cache=options.quality_cache, row_cache=options.cache, costs=costs,
                       bench_settings=options.bench_settings, progress=options.progress, pace=pace)
    if options.write_seed is not None:
        options.write_seed.write_text(json.dumps(costs.seed_document(), indent=1, sort_keys=True) + "\n")
    return write_compare_report(plan, outcome, options, threads)


def write_compare_report(plan: Plan, outcome: Outcome, options: CompareOptions, threads: int) -> Path:
    """``report.md`` (summary lines, coverage, quality, speed), ``quality.json`` and ``speed.json``."""
    from attnzoo.bench import save
    from attnzoo.registry import families

    out = options.out
    rows = sorted(outcome.quality_rows, key=lambda r: (r["setting"], r["mixer"]))
    (out / "quality.json").write_text(json.dumps({"command": options.command, "threads_per_job": threads,
                                                  "rows": rows}, indent=1, default=str) + "\n")
    if outcome.speed_doc is not None:
        outcome.speed_doc["command"] = options.command
        save(outcome.speed_doc, out / "speed.json")
    chosen = check_families(options.families) if options.families else families()
    sections = [Section("Pick this when", pick_lines(rows, outcome.speed_doc, chosen)),
                Section("What this run covers", coverage(plan, outcome)),
                *quality_task_sections(rows, out),
                *speed_family_sections(outcome.speed_doc, out),
                Section("Quality settings", _settings_markdown(plan, threads))]
    return write_report(out / "report.md", TITLE, sections, options.command)


def _settings_markdown(plan: Plan, threads: int) -> str:
    seen: dict[str, str] = {}
    for planned in plan.quality():
        job = planned.job
        if job.task.name not in seen:
            seen[job.task.name] = job.task.settings_markdown(job.train_config)
    lines = [f"- training jobs ran on {plan.workers} worker process(es), {threads} thread(s) each (the throughput "
             "columns are per job); speed rows ran afterwards, alone, on every core"]
    return "\n".join(lines + [f"\n**{name}**\n\n{text}" for name, text in seen.items()])
