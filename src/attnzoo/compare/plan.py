"""Which jobs ``attnzoo compare`` runs within its time budget.

:func:`make_plan` takes the jobs in tier order (:mod:`attnzoo.compare.jobs`), the families taking turns within
a tier (so every family gets its representatives in before any family gets its second round), and keeps each
job whose estimated cost still fits: quality jobs run on ``workers`` processes (their wall time is the makespan
of a longest-first schedule), speed jobs one after another after them. A job whose results are all in the cache
costs nothing and is always kept. ``full=True`` keeps everything. The planned wall time leaves
:data:`MARGIN` of the budget for what estimates miss (start-up, data loading, the report).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from attnzoo.compare.jobs import Job, QualityJob

MARGIN = 0.15
"""Fraction of the budget kept free of planned work."""
OVERHEAD_S = 30.0
"""Fixed cost of a run besides its jobs: imports, the calibration, worker start-up, plots and the report."""
DEFAULT_BUDGET_S = 15 * 60.0


def parse_budget(text: str) -> float:
    """``--budget``: ``90s``, ``15m``, ``1h``, ``1h30m`` or plain seconds; ``ValueError`` otherwise."""
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ValueError(f"--budget {text!r}: expected a duration such as 90s, 15m, 1h or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class Planned:
    """A job with its estimate (0 when every result is cached) and where the estimate came from."""

    job: Job
    estimate_s: float
    source: str


@dataclass(frozen=True)
class Plan:
    """The jobs to run (``chosen``, in run order: quality longest first, then speed by tier) and those the budget
    left out."""

    chosen: tuple[Planned, ...]
    left_out: tuple[Planned, ...]
    budget_s: float | None
    workers: int
    wall_s: float
    """Planned wall time of ``chosen`` including :data:`OVERHEAD_S`."""

    def quality(self) -> list[Planned]:
        return [p for p in self.chosen if isinstance(p.job, QualityJob)]

    def speed(self) -> list[Planned]:
        return [p for p in self.chosen if not isinstance(p.job, QualityJob)]


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of running jobs of these durations on ``workers`` processes, longest first, each on the
    first process to become free."""
    loads = [0.0] * workers
    for cost in sorted(seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + cost)
    return max(loads)


def wall_time(planned: Sequence[Planned], workers: int) -> float:
    """Planned wall seconds: quality jobs on ``workers`` processes, then the speed jobs in turn, plus the
    fixed overhead."""
    quality = [p.estimate_s for p in planned if isinstance(p.job, QualityJob)]
    speed = sum(p.estimate_s for p in planned if not isinstance(p.job, QualityJob))
    return OVERHEAD_S + makespan(quality, workers) + speed


def _order(jobs: Sequence[Planned]) -> list[Planned]:
    """Tier first; within a tier the families take turns (each family's jobs cheapest first)."""
    by_tier: dict[int, dict[str, list[Planned]]] = {}
    for planned in sorted(jobs, key=lambda p: p.estimate_s):
        by_tier.setdefault(planned.job.tier, {}).setdefault(planned.job.family, []).append(planned)
    ordered = []
    for tier in sorted(by_tier):
        queues = list(by_tier[tier].values())
        while any(queues):
            ordered += [queue.pop(0) for queue in queues if queue]
    return ordered


def make_plan(jobs: Sequence[Job], estimate: Callable[[Job], tuple[float, str]], budget_s: float | None,
              workers: int, is_cached: Callable[[Job], bool]) -> Plan:
    """The plan for ``jobs`` within ``budget_s`` (``None``: everything, ``--full``) on ``workers`` quality
    processes. ``ValueError`` when the budget cannot hold the smallest useful run: the cheapest quality job and
    the cheapest speed job of the baseline family with the overhead."""
    planned = []
    for job in jobs:
        if is_cached(job):
            planned.append(Planned(job, 0.0, "cached"))
        else:
            planned.append(Planned(job, *estimate(job)))
    if budget_s is None:
        chosen, left = planned, []
    else:
        _check_budget(planned, budget_s, workers)
        chosen, left = [], []
        for candidate in _order(planned):
            fits = wall_time([*chosen, candidate], workers) <= budget_s * (1 - MARGIN)
            (chosen if fits or candidate.estimate_s == 0 else left).append(candidate)
    chosen.sort(key=lambda p: (0, -p.estimate_s) if isinstance(p.job, QualityJob) else (1, p.job.tier, p.estimate_s))
    return Plan(tuple(chosen), tuple(left), budget_s, workers, wall_time(chosen, workers))


def _check_budget(planned: Sequence[Planned], budget_s: float, workers: int) -> None:
    smallest = []
    for kind in (QualityJob, None):
        costs = [p for p in planned if isinstance(p.job, QualityJob) == (kind is QualityJob)]
        if costs:
            smallest.append(min(costs, key=lambda p: p.estimate_s))
    needed = wall_time(smallest, workers) / (1 - MARGIN)
    if budget_s < needed:
        raise ValueError(f"--budget {budget_s:.0f}s: below the smallest useful run on this machine (one quality "
                         f"and one speed job, ~{needed:.0f}s with start-up and margin); give at least "
                         f"{_minutes(needed)}")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60) + 1}m"
