"""Measured benchmark rows cached on disk, keyed by everything a row depends on, so a rerun measures only what
is missing or changed (and an interrupted run resumes for free).

A row's key (:func:`row_key`) holds:

* ``sources``: a hash of the source its numbers depend on (:func:`source_hash`). For our implementations, the
  ``.py`` (and C++) files of the mechanism's folder ``attnzoo/ops/<mechanism>/`` and of the ``attnzoo/ops``
  folders its implementations import from (found from the registered implementations' modules), the shared
  paths :data:`SHARED_SOURCES` (``ops/tiled.py``, ``ops/dense.py``, ``ops/flex.py``, ``ops/dropin.py``,
  ``masks.py``, the ``registry`` package) and the ``attnzoo/bench`` package itself;
  for a peer or baseline row (an implementation the variant does not register: ``dense-sdpa``, ``natten``, ...),
  the shared paths and the bench package, plus the peer's installed version (:data:`PEER_PACKAGES`);
* the torch version, the machine kind (CPU model, best vector ISA and its levels, torch's CPU capability), the
  thread count and the device (with the CUDA device name on CUDA);
* the workload's name, shape and options, the case's identity (implementation, baseline, note, backward skip)
  and the runner :class:`~attnzoo.bench.runner.Settings`.

The file of an entry is ``<folder>/<sha256 of the key>.json``, holding the key itself, the row and when and where
it was measured; so a row from another machine kind is never even looked up. Entries are written atomically
(temp file + ``os.replace``). An entry that cannot be read or parsed, or whose stored key differs, is ignored
with a warning naming the file and the row is measured again. Rows that failed are not cached (a rerun retries
them); rows skipped before any call (``case.skip``) cost nothing and are not cached either.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import asdict, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from attnzoo.bench.case import Case
from attnzoo.bench.machine import PEER_PACKAGES, cpu_model, vector_isa
from attnzoo.bench.results import CaseResult, ModeResult
from attnzoo.bench.store import EntryStore, json_safe, provenance

CACHE_ENV = "ATTNZOO_CACHE"
FORMAT = 2
"""Version of the entry format; part of every key, so a change of format misses every old entry."""
PACKAGE = Path(__file__).resolve().parent.parent
"""``src/attnzoo``."""
SHARED_SOURCES = ("ops/tiled.py", "ops/dense.py", "ops/flex.py", "ops/dropin.py", "masks.py", "registry")
"""Paths (under ``attnzoo/``) every row depends on, besides the ``bench`` package."""
MEASURED_NOW = "measured now"


def default_folder() -> Path:
    """``$ATTNZOO_CACHE`` if set, else ``~/.cache/attnzoo/bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "attnzoo" / "bench")


def _files_hash(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


SOURCE_SUFFIXES = (".py", ".cpp", ".h")
"""What a row's source hash reads: Python, and the native kernels' C++ (compiled from the package at first use)."""


def _source_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix in SOURCE_SUFFIXES)


def _shared_files(path: Path) -> list[Path]:
    """A shared source: the file itself, or every source file (:data:`SOURCE_SUFFIXES`) of a package folder."""
    return _source_files(path) if path.is_dir() else [path]


def mechanism_folders(case: Case) -> list[str]:
    """The ``attnzoo/ops/<mechanism>`` folders of the case's variant (:func:`variant_folders`)."""
    return variant_folders(case.workload.variant)


def _ops_folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) >= 3 and parts[:2] == ["attnzoo", "ops"] else None


def variant_folders(name: str) -> list[str]:
    """The ``attnzoo/ops/<mechanism>`` folders of variant ``name``: those of its registered implementations'
    modules and of the ``attnzoo.ops`` functions and classes those modules import (the native kernel's folder for
    a ``native`` implementation); empty when the variant is not registered or lives elsewhere."""
    from attnzoo.registry import get_variant

    try:
        variant = get_variant(name)
    except KeyError:
        return []
    found = set()
    for implementation in variant.implementations.values():
        module_name = getattr(implementation.fn, "__module__", "")
        found.add(_ops_folder(module_name))
        module = sys.modules.get(module_name)
        for value in vars(module).values() if module else ():
            if callable(value):
                found.add(_ops_folder(getattr(value, "__module__", None) or ""))
    return sorted(folder for folder in found if folder and (PACKAGE / "ops" / folder).is_dir())


def is_ours(case: Case) -> bool:
    """Whether the case runs a registered implementation of its variant (also as ``IMPL (float32)`` or
    ``IMPL+compile``, the ``bench --op`` rows)."""
    from attnzoo.registry import get_variant

    try:
        names = get_variant(case.workload.variant).implementations
    except KeyError:
        return False
    impl = case.impl.removesuffix("+compile").removesuffix(" (float32)")
    return impl in names


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class _SourceHashes:
    """:func:`source_hash` memoized per run (each folder is read once)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, ...], str] = {}

    def __call__(self, case: Case) -> str:
        folders = tuple(mechanism_folders(case)) if is_ours(case) else ()
        if folders not in self._memo:
            self._memo[folders] = source_hash(folders)
        return self._memo[folders]


def source_hash(mechanisms: Iterable[str] = (), packages: Iterable[str] = ("bench",)) -> str:
    """sha256 of the ``.py`` files of ``attnzoo/ops/<m>/`` for each mechanism ``m``, the shared sources
    (:data:`SHARED_SOURCES`) and the ``attnzoo/<p>`` package for each of ``packages``."""
    paths = [path for shared in SHARED_SOURCES for path in _shared_files(PACKAGE / shared)]
    for package in packages:
        paths += _source_files(PACKAGE / package)
    for mechanism in mechanisms:
        paths += _source_files(PACKAGE / "ops" / mechanism)
    return _files_hash(paths)


def machine_kind() -> dict[str, Any]:
    """What decides whether a row measured elsewhere could stand for one measured here: CPU model, vector ISA
    (best level and every level) and torch's CPU capability."""
    isa = vector_isa()
    return {"cpu": cpu_model(), "isa": isa["isa"], "isa_levels": list(isa["isa_levels"]),
            "torch_cpu_capability": isa["torch_cpu_capability"]}


def _device(device: str) -> dict[str, Any]:
    kind = torch.device(device)
    if kind.type == "cuda" and torch.cuda.is_available():
        return {"device": device, "cuda_device": torch.cuda.get_device_name(kind), "cuda": torch.version.cuda}
    return {"device": device}


def row_key(case: Case, settings: dict[str, Any], sources: str, machine: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """Everything the measured row of ``case`` depends on (see the module docstring)."""
    workload = case.workload
    peer = PEER_PACKAGES.get(case.impl) if not is_ours(case) else None
    return json_safe({
        "format": FORMAT,
        "sources": sources,
        "peer": None if peer is None else {peer: _version(peer)},
        "torch": torch.__version__,
        "machine": machine_kind() if machine is None else machine,
        "threads": torch.get_num_threads(),
        **_device(workload.device),
        "workload": {"name": workload.name, "family": workload.family, "variant": workload.variant,
                     "series": workload.series, "shape": dict(workload.shape), "tokens": workload.tokens,
                     "score_entries": workload.score_entries, "flops": workload.flops,
                     "reference": workload.reference is not None, "reference_skip": workload.reference_skip},
        "case": {"impl": case.impl, "baseline": case.baseline, "note": case.note,
                 "backward_skip": case.backward_skip, "own_reference": case.reference is not None},
        "settings": settings,
    })


def _row_from(data: dict[str, Any]) -> CaseResult:
    known = {f.name for f in fields(CaseResult)}
    row = CaseResult(**{name: value for name, value in data.items() if name in known and name != "modes"})
    mode_fields = {f.name for f in fields(ModeResult)}
    row.modes = {mode: ModeResult(**{k: v for k, v in result.items() if k in mode_fields})
                 for mode, result in data["modes"].items()}
    return row


def _cacheable(row: CaseResult) -> bool:
    return row.status != "failed" and all(mode.status != "failed" for mode in row.modes.values())


class RowCache:
    """The cache folder of a run (an :class:`~attnzoo.bench.store.EntryStore`): ``lookup`` a case's row, ``store``
    a measured one.

    The folder is created and checked writable when opened (``ValueError`` naming it otherwise, before
    anything is measured); ``fresh`` ignores every existing entry (and overwrites it with the new row).
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, *, fresh: bool = False) -> None:
        self.entries = EntryStore(default_folder() if folder is None else folder)
        self.folder = self.entries.folder
        self.fresh = fresh
        self.reused = 0
        self.measured = 0
        self._sources = _SourceHashes()
        self._machine = machine_kind()

    def key(self, case: Case, settings: dict[str, Any]) -> dict[str, Any]:
        """The key of ``case``'s row under ``settings``."""
        return row_key(case, settings, self._sources(case), self._machine)

    def path(self, key: dict[str, Any]) -> Path:
        """The entry file of ``key``."""
        return self.entries.path(key)

    def lookup(self, key: dict[str, Any]) -> CaseResult | None:
        """The cached row of ``key`` with its provenance, or ``None`` (missing, ``fresh``, or a corrupt entry,
        which is warned about and left to be overwritten)."""
        entry = None if self.fresh else self.entries.load(key)
        if entry is None:
            return None
        try:
            row = _row_from(entry["payload"])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            warnings.warn(f"ignoring the unreadable benchmark cache entry {self.path(key)} ({type(error).__name__}: "
                          f"{error}); measuring the row again", stacklevel=2)
            return None
        row.provenance = provenance(entry)
        self.reused += 1
        return row

    def store(self, key: dict[str, Any], row: CaseResult) -> None:
        """Write ``row`` (before derived figures) under ``key``, atomically; a failed row is not cached, and a
        failed write only warns (the run keeps the row)."""
        self.measured += 1
        if not _cacheable(row):
            return
        data = asdict(row)
        data["provenance"] = None
        self.entries.save(key, data)

    def summary(self) -> dict[str, Any]:
        """The cache's line in the run's ``machine`` record."""
        return {"folder": str(self.folder), "fresh": self.fresh, "rows_reused": self.reused,
                "rows_measured": self.measured}
