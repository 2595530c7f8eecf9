"""Markdown reports built from sections, so the comparison report can grow (quality tasks will add theirs).

:func:`speed_sections` turns a benchmark run into sections (table, plots, machine, conventions); ``attnzoo
bench`` writes them as ``{stem}.md`` next to the JSON and plots, ``attnzoo compare`` as part of ``report.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnzoo.bench.plots import plot_run
from attnzoo.bench.table import FULL_COLUMNS, LEADERBOARD_COLUMNS, markdown_table


@dataclass(frozen=True)
class Section:
    """A titled block of markdown with images (paths relative to the report's folder)."""

    title: str
    body: str
    images: Sequence[str] = field(default_factory=tuple)


def render(title: str, sections: Sequence[Section], command: str | None = None) -> str:
    """The report: an optional ``<!-- command: ... -->`` line, the title and each section."""
    lines = [f"<!-- command: {command} -->"] if command else []
    lines.append(f"# {title}")
    for section in sections:
        lines += ["", f"## {section.title}", "", section.body.rstrip()]
        lines += [f"\n![{Path(image).stem}]({image})" for image in section.images]
    return "\n".join(lines) + "\n"


ISA_KEYS = ("isa", "isa_levels", "torch_cpu_capability")


def machine_section(doc: dict[str, Any]) -> Section:
    """CPU and its vector ISA first, then threads, versions, load and the measured GEMM peak."""
    machine = doc["machine"]
    isa = machine.get("isa", "not recorded")
    levels = ", ".join(machine.get("isa_levels") or []) or "none detected"
    items = [f"- cpu: {machine.get('cpu', 'not recorded')}; vector ISA: {isa} (flags: {levels}; torch CPU "
             f"kernels dispatch to {machine.get('torch_cpu_capability', 'not recorded')})"]
    items += [f"- {key}: {value}" for key, value in machine.items() if key not in ("cpu", *ISA_KEYS)]
    items.append(f"- fp32 GEMM peak (torch.mm 2048x2048, median): {doc['gemm_peak_gflops']:.1f} GFLOP/s")
    items.append(f"- settings: {doc['settings']}")
    return Section("Machine", "\n".join(items))


def conventions_section(doc: dict[str, Any]) -> Section:
    """How every column was measured."""
    return Section("Conventions", "\n".join(f"- **{key}**: {text}" for key, text in doc["conventions"].items()))


def speed_sections(doc: dict[str, Any], out_dir: Path, stem: str, *, leaderboard: bool) -> list[Section]:
    """Draw the plots into ``out_dir`` and return the sections of a speed/memory run: the leaderboard (or the
    full table), the plots, the machine and the conventions."""
    images = [path.name for path in plot_run(doc, out_dir, stem)]
    family = ", ".join(dict.fromkeys(row["family"] for row in doc["rows"]))
    columns, what = (LEADERBOARD_COLUMNS, "Leaderboard") if leaderboard else (FULL_COLUMNS, "Results")
    return [Section(f"{what}: speed and memory ({family} family, CPU fp32)", markdown_table(doc["rows"], columns)),
            Section("Plots", "Time and peak memory against tokens (log-log).", images),
            machine_section(doc), conventions_section(doc)]


def write_report(path: Path, title: str, sections: Sequence[Section], command: str | None = None) -> Path:
    """Write the rendered report to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(title, sections, command))
    return path
