"""``attnzoo compare``'s cache of quality rows, beside the benchmark's row cache (same folder, same
:class:`~attnzoo.bench.store.EntryStore`).

A quality row's key holds the task and its settings, the mixer and its options, the training config, a hash of
the sources the run goes through (the mixer's ``attnzoo/ops/<mechanism>`` folders, the shared op sources and the
``layers``, ``models``, ``tasks``, ``train`` and ``data`` packages), the torch version, the machine kind and the
threads the job ran on (its throughput column depends on them). A rerun trains only what is missing or changed;
``--fresh`` trains everything again.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch

from attnzoo.bench.cache import default_folder, machine_kind, source_hash, variant_folders
from attnzoo.bench.store import EntryStore, json_safe, provenance
from attnzoo.compare.jobs import QualityJob
from attnzoo.models.architectures import mixer_variant
from attnzoo.tasks.harness import task_settings

FORMAT = 1
QUALITY_PACKAGES = ("layers", "models", "tasks", "train", "data")
"""The ``attnzoo`` packages every quality run goes through."""


class QualityCache:
    """Quality rows by key; ``folder=None`` is the benchmark cache's default folder."""

    def __init__(self, folder: str | os.PathLike[str] | None = None, *, fresh: bool = False) -> None:
        self.store = EntryStore(default_folder() if folder is None else folder)
        self.fresh = fresh
        self._machine = machine_kind()
        self._sources: dict[str, str] = {}

    def key(self, job: QualityJob, threads: int) -> dict[str, Any]:
        """Everything ``job``'s row depends on when run on ``threads`` threads."""
        folders = tuple(variant_folders(mixer_variant(job.mixer)))
        if folders not in self._sources:
            self._sources[folders] = source_hash(folders, QUALITY_PACKAGES)
        config = replace(job.train_config, out_dir=None, progress=False).to_dict()
        return json_safe({"format": FORMAT, "kind": "quality", "task": job.task.name,
                          "settings": task_settings(job.task), "mixer": job.mixer, "options": dict(job.options),
                          "train_config": config, "sources": self._sources[folders], "torch": torch.__version__,
                          "machine": self._machine, "threads": threads})

    def lookup(self, job: QualityJob, threads: int) -> dict[str, Any] | None:
        """The cached row of ``job`` with ``provenance`` set, or ``None``."""
        entry = None if self.fresh else self.store.load(self.key(job, threads))
        return None if entry is None else {**entry["payload"], "provenance": provenance(entry)}

    def save(self, job: QualityJob, threads: int, row: dict[str, Any]) -> None:
        """Keep a freshly measured row."""
        self.store.save(self.key(job, threads), json_safe(row))
