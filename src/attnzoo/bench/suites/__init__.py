"""Benchmark suites: ``SUITES[name](subset, impls, device=...)`` returns the cases to run.

``local`` and ``linear`` are the hand-written workloads of those families (realistic sizes, peer libraries,
useful-FLOP counts); ``all`` is the registry-wide suite (:mod:`.registry`): every registered variant on its
test spec's benchmark case, every implementation of it.
"""

from collections.abc import Callable

from attnzoo.bench.case import Case
from attnzoo.bench.suites.linear import linear_cases
from attnzoo.bench.suites.local import local_cases
from attnzoo.bench.suites.registry import SUITE, family_suite

FAMILY_SUITES: dict[str, Callable[..., list[Case]]] = {"local": local_cases, "linear": linear_cases}
"""The hand-written family suites, which ``attnzoo compare`` runs (its 15-minute budget has no room yet for every
implementation of every variant; ``attnzoo bench --family all`` measures those)."""
SUITES: dict[str, Callable[..., list[Case]]] = {**FAMILY_SUITES, SUITE: family_suite(None)}

__all__ = ["FAMILY_SUITES", "SUITES"]
