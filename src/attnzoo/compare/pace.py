"""Keeping a compare run inside its budget while it runs: estimates can be off (another process sharing the
cores, a machine slower than its calibration said), so the engine re-plans as jobs finish.

:class:`Pace` tracks how long finished jobs really took against their estimates (``slowdown``, the ratio of the
sums) and projects the rest of the run at that pace; :func:`trim` then drops the lowest-priority jobs still
waiting (highest tier, then the most expensive) until the projection fits the budget. Dropped jobs are reported
in the coverage section ("dropped while running"), never silently: a run with a budget finishes on time with
fewer rows rather than late with all of them. Jobs already running are never interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from attnzoo.compare.plan import Planned


@dataclass
class Pace:
    """The run's clock: ``budget_s`` (``None``: no budget) counted from ``started`` (``clock()`` when the pace is
    made, the start of the run, unless given)."""

    budget_s: float | None
    clock: Callable[[], float] = time.perf_counter
    started: float | None = None
    estimated: float = 0.0
    actual: float = 0.0

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def finished(self, estimate_s: float, actual_s: float) -> None:
        """Note a finished job (jobs estimated at 0, cached ones, do not tell the pace)."""
        if estimate_s > 0:
            self.estimated += estimate_s
            self.actual += actual_s

    @property
    def slowdown(self) -> float:
        """Measured over estimated seconds of the finished jobs (1 before any)."""
        return self.actual / self.estimated if self.estimated > 0 else 1.0

    def fits(self, remaining_estimate_s: float) -> bool:
        """Whether the run ends within the budget if the remaining work (planned wall seconds) goes at the
        measured pace."""
        if self.budget_s is None:
            return True
        return self.clock() - self.started + remaining_estimate_s * self.slowdown <= self.budget_s


def trim(waiting: list[Planned], pace: Pace, remaining: Callable[[list[Planned]], float]) -> list[Planned]:
    """Remove from ``waiting`` (in place) the lowest-priority jobs until ``remaining(waiting)`` fits the pace;
    the removed jobs."""
    dropped = []
    while waiting and not pace.fits(remaining(waiting)):
        victim = max(waiting, key=lambda p: (p.job.tier, p.estimate_s))
        waiting.remove(victim)
        dropped.append(victim)
    return dropped
