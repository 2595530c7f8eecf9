"""One place that writes a demonstration's result: ``result.json`` (command, settings, machine, metrics) and
``result.md`` (title, command, table, reading), atomically, next to the figures the demonstration wrote."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attnzoo.bench.store import writable_folder
from attnzoo.kv.measure import machine_info
from attnzoo.train import atomic_write


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as a markdown table of ``columns`` (floats with 4 significant digits)."""
    def cell(value: Any) -> str:  # noqa: ANN401
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_result(out: str | Path, *, title: str, command: str, settings: Mapping[str, Any],
                 rows: Sequence[Mapping[str, Any]], columns: Sequence[str], reading: str,
                 figures: Sequence[str | Path] = ()) -> list[Path]:
    """Write ``result.json`` and ``result.md`` under ``out`` and return them with ``figures``.

    ``rows`` are the measured results (one mapping per model or setting, JSON-serialisable), ``columns`` the keys
    the markdown table shows, ``reading`` what the numbers say (and do not), ``figures`` image files already
    written under ``out`` that the markdown links.
    """
    folder = writable_folder(str(out), "--out")
    figures = [Path(figure) for figure in figures]
    record = {"title": title, "command": command, "settings": dict(settings), "machine": machine_info(),
              "rows": [dict(row) for row in rows]}
    text = "\n\n".join([f"# {title}", f"`{command}`", markdown_table(rows, columns),
                        *[f"![{figure.stem}]({figure.name})" for figure in figures], reading.strip()]) + "\n"
    json_path, md_path = folder / "result.json", folder / "result.md"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    atomic_write(md_path, lambda tmp: Path(tmp).write_text(text))
    return [json_path, md_path, *figures]


__all__ = ["markdown_table", "write_result"]
