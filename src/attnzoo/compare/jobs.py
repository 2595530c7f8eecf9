"""The units of work of ``attnzoo compare``: quality jobs (train and score one mixer on one task setting) and
speed jobs (every implementation of one benchmark workload, its baseline included, so its ratios hold).

:func:`quality_jobs` and :func:`speed_jobs` list every job of the chosen families, each with a *tier* the planner
fills in order:

* tier 0: each family's representative variants (declared ``Variant.compare_default``; a family that declares
  none is represented by its first variant) on the registry-wide speed workload and on their headline quality
  task (MQAR at the middle length for causal sequence mixers, the Fashion-MNIST ViT for spatial ones), and the
  dense baseline (``softmax``) on every quality setting (every quality table needs it);
* tier 1: the representatives on the other MQAR lengths and the Austen LM, and the hand-written family suites
  (peers, realistic sizes);
* tier 2: every other variant's speed workload and headline quality task;
* tier 3: every other variant on the remaining settings.

Quality jobs are plain data (picklable: they run in worker processes or on a cluster); :func:`run_quality_job`
is the function a worker runs. Speed jobs hold closures and run in the main process only, after the training
jobs, so no timing ever runs beside training.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from attnzoo.bench.case import Case
from attnzoo.registry import families, get_variant, variants
from attnzoo.tasks.austen_lm import AustenLMTask
from attnzoo.tasks.fashion_mnist import FashionMNISTTask
from attnzoo.tasks.mqar_eval import MQARTask
from attnzoo.train import TrainConfig

MQAR_SETTINGS: tuple[tuple[int, int], ...] = ((64, 4), (128, 8), (256, 16))
"""(seq_len, num_kv_pairs) of the MQAR rows: Zoology's Figure 2 settings up to 256; the middle one is tier 0."""
DENSE = "softmax"
"""The dense baseline's mixer name: its quality rows are on every table."""


@dataclass(frozen=True)
class QualityJob:
    """Train ``mixer`` (of ``family``) on ``task`` with ``train_config`` and score it. ``task`` is an unprepared
    task dataclass (its data is loaded in the worker that runs the job)."""

    task: Any
    mixer: str
    family: str
    options: Mapping[str, Any]
    train_config: TrainConfig
    tier: int
    kind: str = field(default="quality", init=False)

    @property
    def setting(self) -> str:
        """The task and, for MQAR, its length: the table the row belongs to (``mqar L128``, ``austen``)."""
        return f"{self.task.name} L{self.task.seq_len}" if self.task.name == "mqar" else self.task.name

    @property
    def label(self) -> str:
        return f"{self.setting} {self.mixer}"

    @property
    def task_name(self) -> str:
        return self.task.name

    @property
    def who(self) -> str:
        return self.mixer

    @property
    def work(self) -> float:
        """Training items (tokens, images) the job processes: what its cost scales with."""
        return float(self.train_config.steps * self.task.items_per_batch)

    def cost_key(self) -> str:
        """What the job's duration depends on, without source hashes (a code edit rarely changes the cost)."""
        from attnzoo.tasks.harness import task_settings

        return json.dumps({"task": self.task.name, "settings": task_settings(self.task), "mixer": self.mixer,
                           "options": self.options, "steps": self.train_config.steps}, sort_keys=True, default=repr)


@dataclass(frozen=True)
class SpeedJob:
    """Every implementation of one benchmark workload (``cases``, baseline first), from suite ``suite``."""

    family: str
    suite: str
    workload: str
    cases: tuple[Case, ...]
    tier: int
    kind: str = field(default="speed", init=False)

    @property
    def setting(self) -> str:
        return f"speed {self.suite}"

    @property
    def label(self) -> str:
        return f"speed {self.workload}"

    @property
    def task_name(self) -> str:
        return self.suite

    @property
    def who(self) -> str:
        return self.cases[0].workload.variant

    @property
    def work(self) -> float:
        return float(len(self.cases))

    def cost_key(self) -> str:
        return json.dumps({"suite": self.suite, "workload": self.workload,
                           "impls": [case.impl for case in self.cases]}, sort_keys=True)


Job = QualityJob | SpeedJob


def representatives(family: str) -> list[str]:
    """The variants of ``family`` that stand for it in the default run: those declaring
    ``compare_default=True``, else its first variant."""
    members = variants(family)
    declared = [v.name for v in members if v.compare_default]
    return declared or [members[0].name]


def _mixer_family(mixer: str) -> str:
    from attnzoo.models.architectures import mixer_variant

    return get_variant(mixer_variant(mixer)).family


def _tier(mixer: str, headline: bool) -> int:
    """Tier of a quality job: the baseline always 0; a representative 0 on its headline setting, else 1; any
    other variant 2 on the headline setting, else 3."""
    if mixer == DENSE:
        return 0
    representative = mixer in representatives(_mixer_family(mixer))
    return (0 if headline else 1) if representative else (2 if headline else 3)


@dataclass(frozen=True)
class QualitySettings:
    """The quality rows of compare: which tasks (``tasks``), each task's settings and training budget (small,
    so ~100 variants fit a budget; ``--full`` runs every row on the same budgets). ``quick`` divides every
    budget by 3 and drops the longest MQAR length."""

    tasks: tuple[str, ...] = ("mqar", "austen", "fashion-mnist")
    mqar: MQARTask = field(default_factory=lambda: MQARTask(train_examples=10_000, test_examples=500, batch_size=32))
    mqar_lengths: tuple[tuple[int, int], ...] = MQAR_SETTINGS
    mqar_steps: int = 400
    mqar_lr: float = 1e-2
    austen: AustenLMTask = field(default_factory=lambda: AustenLMTask(seq_len=128, val_bytes=32_768))
    austen_steps: int = 150
    austen_lr: float = AustenLMTask.default_lr
    fashion: FashionMNISTTask = field(default_factory=lambda: FashionMNISTTask(batch_size=64, test_examples=2_000))
    fashion_steps: int = 150
    fashion_lr: float = FashionMNISTTask.default_lr
    quick: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        unknown = [name for name in self.tasks if name not in QUALITY_TASKS]
        if unknown:
            raise ValueError(f"--tasks {','.join(self.tasks)!r}: unknown {unknown}; expected names from "
                             f"{list(QUALITY_TASKS)}")
        if not self.mqar_lengths:
            raise ValueError("mqar_lengths is empty; expected (seq_len, num_kv_pairs) settings")

    def train_config(self, steps: int, lr: float) -> TrainConfig:
        steps = max(1, steps // 3) if self.quick else steps
        return TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 10), progress=False, device=self.device)

    def tasks_and_mixers(self, causal: list[str], spatial: list[str]) -> list[tuple[Any, list[str], TrainConfig,
                                                                                    bool]]:
        """``(task, mixers, train config, headline)`` of every selected task setting."""
        lengths = self.mqar_lengths[:-1] if self.quick and len(self.mqar_lengths) > 1 else self.mqar_lengths
        headline = self.mqar_lengths[len(self.mqar_lengths) // 2]
        found: list[tuple[Any, list[str], TrainConfig, bool]] = []
        if "mqar" in self.tasks:
            config = self.train_config(self.mqar_steps, self.mqar_lr)
            found += [(replace(self.mqar, seq_len=n, num_kv_pairs=pairs), causal, config, (n, pairs) == headline)
                      for n, pairs in lengths]
        if "austen" in self.tasks:
            found.append((self.austen, causal, self.train_config(self.austen_steps, self.austen_lr), False))
        if "fashion-mnist" in self.tasks:
            found.append((self.fashion, spatial, self.train_config(self.fashion_steps, self.fashion_lr), True))
        return found


QUALITY_TASKS = ("mqar", "austen", "fashion-mnist")
"""The quality tasks of compare: MQAR and the Austen LM for causal sequence mixers, Fashion-MNIST for spatial."""


def quality_jobs(chosen_families: Sequence[str], settings: QualitySettings,
                 mixers: Sequence[str] | None = None) -> list[QualityJob]:
    """Every quality job of ``chosen_families`` (the dense baseline's always included): MQAR at each length and
    the Austen LM for causal sequence mixers, the Fashion-MNIST ViT for spatial ones; ``mixers`` restricts the
    mixers (the baseline stays). Every mixer is checked against every task before anything runs."""
    from attnzoo.models.architectures import language_model_names
    from attnzoo.models.mixers import GRID_LAYOUT, usable_mixers
    from attnzoo.tasks.harness import resolve_mixer_options

    def keep(names: list[str]) -> list[str]:
        return [n for n in names if n == DENSE or (_mixer_family(n) in chosen_families
                                                    and (mixers is None or n in mixers))]

    causal = keep(list(language_model_names()))  # causal mixers and whole architectures (block_transformer)
    spatial = keep([DENSE] + usable_mixers((GRID_LAYOUT,), causal=False))
    jobs = []
    for task, names, config, headline in settings.tasks_and_mixers(causal, spatial):
        options = resolve_mixer_options(task, names)
        jobs += [QualityJob(task, name, _mixer_family(name), options[name], config, _tier(name, headline))
                 for name in names]
    return jobs


def speed_jobs(chosen_families: Sequence[str], subset: str, device: str,
               impls: Sequence[str] | None = None) -> list[SpeedJob]:
    """Every speed job of ``chosen_families``: each variant's registry-wide workload (tier 0 for a
    representative, else 2) and each workload of the hand-written family suites (tier 1)."""
    from attnzoo.bench.suites import SUITES, suite_cases
    from attnzoo.bench.suites.registry import SUITE, registry_cases

    jobs = []
    for family in chosen_families:
        reps = representatives(family)
        grouped = _by_workload(registry_cases(subset, impls, device, family))
        jobs += [SpeedJob(family, "all", name, tuple(cases), 0 if cases[0].workload.variant in reps else 2)
                 for name, cases in grouped.items()]
        if family in SUITES and family != SUITE:  # a hand-written suite may hold the registry workloads too
            grouped = _by_workload(suite_cases(family, subset, impls, device))
            seen = {job.workload for job in jobs}
            jobs += [SpeedJob(family, family, name, tuple(cases), 1) for name, cases in grouped.items()
                     if name not in seen]
    return jobs


def _by_workload(cases: Sequence[Case]) -> dict[str, list[Case]]:
    grouped: dict[str, list[Case]] = {}
    for case in cases:
        grouped.setdefault(case.workload.name, []).append(case)
    return grouped


def check_families(names: Sequence[str] | None) -> list[str]:
    """``--families``: the registered families that have variants (all when ``None``); ``ValueError`` naming
    every unknown one."""
    present = families()
    if names is None:
        return present
    unknown = [name for name in names if name not in present]
    if unknown or not names:
        raise ValueError(f"--families {','.join(names)!r}: unknown famil{'ies' if len(unknown) > 1 else 'y'} "
                         f"{', '.join(map(repr, unknown)) or '(none given)'}; expected names from {present}")
    return list(dict.fromkeys(names))


def run_quality_job(job: QualityJob, run_dir: str, threads: int) -> dict[str, Any]:
    """What a worker runs: ``threads`` intra-op threads, a fresh copy of the task prepared, then
    :func:`~attnzoo.tasks.harness.train_and_score`; the row with ``job_s``, the job's whole wall time."""
    from attnzoo.tasks.harness import train_and_score

    torch.set_num_threads(threads)
    start = time.perf_counter()
    task = replace(job.task)
    task.prepare()
    row = train_and_score(task, job.mixer, job.options, job.train_config, Path(run_dir))
    return {**row, "job_s": time.perf_counter() - start}
