"""Benchmark suites: ``SUITES[name](subset, impls, device=...)`` returns the cases to run.

``local``, ``linear``, ``heads`` and ``sparse`` are the hand-written workloads of those families (realistic sizes,
peer libraries, useful-FLOP counts, decoding), ``cnn`` the CNN modules beside the 3x3 convolution they augment
(:mod:`.cnn`); ``all`` is the registry-wide suite (:mod:`.registry`): every registered variant on its test spec's
benchmark case, every implementation of it.
"""

from collections.abc import Callable, Collection

from attnzoo.bench.case import Case
from attnzoo.bench.suites.cnn import cnn_cases
from attnzoo.bench.suites.heads import heads_cases
from attnzoo.bench.suites.linear import linear_cases
from attnzoo.bench.suites.local import local_cases
from attnzoo.bench.suites.registry import SUITE, family_suite
from attnzoo.bench.suites.sparse import sparse_cases

FAMILY_SUITES: dict[str, Callable[..., list[Case]]] = {"local": local_cases, "linear": linear_cases,
                                                      "heads": heads_cases, "sparse": sparse_cases,
                                                      "cnn": cnn_cases}
"""The hand-written family suites (realistic sizes, peers): ``attnzoo compare`` runs their workloads at tier 1,
after each family's representatives on the registry-wide suite (:mod:`attnzoo.compare.jobs`)."""
SUITES: dict[str, Callable[..., list[Case]]] = {**FAMILY_SUITES, SUITE: family_suite(None)}



def suite_cases(family: str, subset: str, impls: Collection[str] | None, device: str) -> list[Case]:
    """The benchmark cases of ``family``: its hand-written suite in :data:`SUITES`, else the registry-wide
    suite of that family; ``device`` is passed where the suite takes one (else it must be CPU)."""
    import inspect

    import torch

    from attnzoo.registry import families

    if family not in SUITES and family not in families():
        raise SystemExit(f"no benchmark suite for family {family!r}; suites: {sorted({*SUITES, *families()})}")
    suite = SUITES[family] if family in SUITES else family_suite(family)
    if "device" in inspect.signature(suite).parameters:
        return suite(subset, impls, device=device)
    if torch.device(device).type != "cpu":
        raise ValueError(f"--device {device!r}: the {family} benchmark suite runs on CPU only (it takes no "
                         "device); expected 'cpu'")
    return suite(subset, impls)


__all__ = ["FAMILY_SUITES", "SUITES", "suite_cases"]
