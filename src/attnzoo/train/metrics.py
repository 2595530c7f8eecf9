"""Metrics as JSON lines: one object per logged step, appended and flushed as the run goes."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any


class JsonlLogger:
    """Append-only JSON-lines writer; on resume, records after ``resume_step`` are dropped first.

    Records from an interrupted run past its last checkpoint would otherwise appear twice. A torn final line
    (the run was killed mid-write) is dropped with a warning (see :func:`read_jsonl`).
    """

    def __init__(self, path: str | os.PathLike[str], resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [record for record in read_jsonl(self.path) if record.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))
        self._f = open(self.path, "a")

    def log(self, record: dict[str, Any]) -> None:
        """Write one record and flush it."""
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a JSON-lines file.

    A final line that does not parse (torn by a kill mid-write) is skipped with a warning naming the file; a bad
    line before the last raises ``ValueError`` naming the file and the line number.
    """
    lines = [(number, line) for number, line in enumerate(Path(path).read_text().splitlines(), 1) if line.strip()]
    records = []
    for i, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if i + 1 < len(lines):
                raise ValueError(f"{path} line {number} is not JSON ({error}): {line[:80]!r}; expected one JSON "
                                 "object per line") from error
            warnings.warn(f"ignoring the torn last line {number} of {path} ({error}): {line[:80]!r}", stacklevel=2)
    return records
