"""A folder of JSON entries keyed by what they depend on: the storage under the benchmark row cache
(:mod:`attnzoo.bench.cache`) and ``attnzoo compare``'s quality-run cache (:mod:`attnzoo.compare.cache`).

An entry is ``<folder>/<sha256 of the key's canonical JSON>.json`` holding the key itself, when it was measured
and its payload; a key that changes (another source hash, torch, machine kind, setting or entry format) simply
names another file, so entries of another version are never read (the folder rebuilds itself). Entries are
written atomically (temp file + ``os.replace``); one that cannot be read or parsed, or whose stored key differs,
is ignored with a warning naming the file (and overwritten by the next store).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any


def writable_folder(folder: str | os.PathLike[str], flag: str, hint: str = "") -> Path:
    """``folder`` created if needed and checked writable with a probe file; ``ValueError`` naming ``flag`` and the
    folder (then ``hint``) if not: before anything is measured."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".attnzoo-write-probe-"):
            pass
    except OSError as error:
        raise ValueError(f"{flag} {str(folder)!r} is not a writable folder ({error.strerror or error}); expected a "
                         f"folder that can be created and written to{hint}") from None
    return path


def json_safe(value: Any) -> Any:
    """A JSON value of ``value`` (unknown objects by ``repr``), so every key serialises the same way."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def key_digest(key: dict[str, Any]) -> str:
    """The entry's file stem: sha256 of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class EntryStore:
    """The entries of one folder. ``flag`` names the command-line option that chose the folder, for the error
    raised (before anything is measured) when it cannot be created or written."""

    def __init__(self, folder: str | os.PathLike[str], *, flag: str = "--cache") -> None:
        self.folder = writable_folder(folder, flag, ", or pass --no-cache")

    def path(self, key: dict[str, Any]) -> Path:
        """The entry file of ``key``."""
        return self.folder / f"{key_digest(key)}.json"

    def load(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The entry of ``key`` (``key``, ``measured_at``, ``payload``), or ``None`` when missing or unreadable
        (warned about)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
            if entry["key"] != key:
                raise ValueError("its stored key differs from the row's")
            entry["measured_at"], entry["payload"]  # noqa: B018 - both must be present
        except (OSError, ValueError, KeyError, TypeError) as error:
            warnings.warn(f"ignoring the unreadable cache entry {path} ({type(error).__name__}: {error}); "
                          "measuring it again", stacklevel=3)
            return None
        return entry

    def save(self, key: dict[str, Any], payload: Any) -> None:
        """Write ``payload`` under ``key`` atomically; a failed write only warns (the run keeps its result)."""
        from attnzoo.train.checkpoint import atomic_write

        entry = {"key": key, "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "payload": payload}
        path = self.path(key)

        def write(tmp: str) -> None:
            Path(tmp).write_text(json.dumps(entry, indent=1) + "\n")

        try:
            atomic_write(path, write)
        except OSError as error:
            warnings.warn(f"could not write the cache entry {path} ({error}); the result is kept in this run only",
                          stacklevel=3)


def provenance(entry: dict[str, Any]) -> str:
    """``"reused from <date> on <cpu>"`` for a loaded entry."""
    return f"reused from {entry['measured_at']} on {entry['key']['machine']['cpu']}"
