"""The backbone leaderboard: every committed Fashion-MNIST backbone run as one table and one accuracy-vs-throughput
scatter plot.

The runs are the JSONs ``attnzoo eval fashion-mnist --models M --out DIR`` writes (``DIR/fashion-mnist-models.json``,
one model per folder); they are looked up as ``<results>/backbones*/<model>/fashion-mnist-models.json`` (default
``results``: ``benchmarks/quality``), so each folder named ``backbones*`` is one *suite* (one training budget, e.g.
``backbones_short``: 300 steps of 128). ``attnzoo leaderboard backbones`` writes the table and plot, and
``attnzoo compare`` adds them as a section when such results exist.

A run may have a ``run_conditions.json`` beside its JSON (the harness does not record the machine's load)::

    {"quiet": false, "threads": 1, "load_average_start": [2.1, 1.9, 1.5], "load_average_end": [2.4, 2.0, 1.6]}

Its images/s are comparable only with those of other quiet runs: the table says which rows were measured under
load and the plot draws them with another marker. A run without the file is reported as "not recorded".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnzoo.bench.report import Section

BACKBONE_RESULTS = Path("benchmarks/quality")
"""Where ``attnzoo compare`` and ``attnzoo leaderboard backbones`` look for the suites by default."""
RUN_FILE = "fashion-mnist-models.json"
CONDITIONS_FILE = "run_conditions.json"
TASK = "fashion-mnist-models"
BASELINE = "resnet18"
"""The plain ResNet-18 every ``resnet18_<module>`` row is measured against (same suite)."""


@dataclass(frozen=True)
class BackboneRun:
    """One model's row of one suite: accuracy, size, training rate and wall time, and how it was measured."""

    suite: str
    model: str
    params: int
    test_accuracy: float
    train_images_per_s: float
    infer_images_per_s: float
    steps: int
    train_time_s: float
    command: str
    conditions: Mapping[str, Any] | None

    @property
    def loaded(self) -> bool:
        """Whether the run was recorded as measured under load (its images/s are then not comparable)."""
        return self.conditions is not None and not self.conditions.get("quiet", False)

    def conditions_text(self) -> str:
        """``quiet``, ``loaded (load 2.1 at start, 1 thread)`` or ``not recorded``."""
        if self.conditions is None:
            return "not recorded"
        threads = self.conditions.get("threads")
        threads_text = f", {threads} thread{'s' if threads != 1 else ''}" if threads is not None else ""
        if not self.loaded:
            return f"quiet{threads_text}"
        load = self.conditions.get("load_average_start")
        load_text = f"load {load[0]:.1f} at start" if load else "load not recorded"
        return f"loaded ({load_text}{threads_text})"


def _require(doc: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in doc:
        raise ValueError(f"{path}: expected key {key!r} of an `attnzoo eval fashion-mnist --models` JSON; it has "
                         f"{', '.join(map(repr, doc)) or 'none'}")
    return doc[key]


def read_run(path: Path) -> list[BackboneRun]:
    """The rows of one ``fashion-mnist-models.json`` (suite: the name of the folder above the model's folder),
    with the ``run_conditions.json`` beside it when present. ``ValueError`` naming the file for a JSON of another
    task or one missing a field."""
    path = Path(path)
    doc = json.loads(path.read_text())
    task = _require(doc, "task", path)
    if task != TASK:
        raise ValueError(f"{path}: task {task!r}; expected {TASK!r} (an `attnzoo eval fashion-mnist --models` JSON)")
    conditions_path = path.parent / CONDITIONS_FILE
    conditions = json.loads(conditions_path.read_text()) if conditions_path.exists() else None
    command = doc.get("command") or "not recorded"
    runs = []
    for row in _require(doc, "rows", path):
        runs.append(BackboneRun(
            suite=path.parent.parent.name, model=_require(row, "mixer", path), params=_require(row, "params", path),
            test_accuracy=_require(row, "test_accuracy", path),
            train_images_per_s=_require(row, "train_items_per_s", path),
            infer_images_per_s=_require(row, "infer_images_per_s", path), steps=_require(row, "steps", path),
            train_time_s=_require(row, "train_time_s", path), command=command, conditions=conditions))
    return runs


def find_runs(results: Path = BACKBONE_RESULTS) -> list[BackboneRun]:
    """Every run under ``results/backbones*/*/``, by suite then descending accuracy; empty when there are none."""
    paths = sorted(Path(results).glob(f"backbones*/*/{RUN_FILE}"))
    runs = [run for path in paths for run in read_run(path)]
    return sorted(runs, key=lambda r: (r.suite, -r.test_accuracy, r.model))


def _baseline_accuracy(runs: Sequence[BackboneRun], suite: str) -> float | None:
    return next((r.test_accuracy for r in runs if r.suite == suite and r.model == BASELINE), None)


def leaderboard_table(runs: Sequence[BackboneRun]) -> str:
    """A markdown table: model, parameters, test accuracy (and, for ``resnet18_<module>``, its difference from the
    plain ResNet-18 of the same suite), train and inference images/s, steps, wall time, load conditions."""
    lines = ["| suite | model | params (M) | test accuracy | vs ResNet-18 | train img/s | infer img/s | steps "
             "| train wall (s) | conditions |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        baseline = _baseline_accuracy(runs, run.suite)
        versus = (f"{100 * (run.test_accuracy - baseline):+.1f} pt"
                  if baseline is not None and run.model.startswith(BASELINE + "_") else "")
        lines.append(f"| {run.suite} | {run.model} | {run.params / 1e6:.2f} | {100 * run.test_accuracy:.1f}% "
                     f"| {versus} | {run.train_images_per_s:.0f} | {run.infer_images_per_s:.0f} | {run.steps} "
                     f"| {run.train_time_s:.0f} | {run.conditions_text()} |")
    return "\n".join(lines)


def command_templates(runs: Sequence[BackboneRun]) -> list[str]:
    """The distinct commands of the runs with each run's model name replaced by ``<model>``, in first-seen order
    (one line for a suite whose runs all used the same command)."""
    templates = [re.sub(rf"(?<![\w-]){re.escape(run.model)}(?![\w-])", "<model>", run.command) for run in runs]
    return list(dict.fromkeys(templates))


def plot_leaderboard(runs: Sequence[BackboneRun], path: Path) -> Path:
    """A scatter plot of test accuracy against training images/s (log x), one labelled point per run and a marker
    per suite; runs measured under load are hollow. ``ValueError`` with no runs."""
    if not runs:
        raise ValueError("plot_leaderboard: runs is empty; expected at least one backbone run")
    from attnzoo.bench.plots import pyplot

    plt = pyplot()
    suites = list(dict.fromkeys(run.suite for run in runs))
    markers = dict(zip(suites, "osD^v<>p*h"))
    fig, ax = plt.subplots(figsize=(9, 6))
    for suite in suites:
        for loaded in (False, True):
            members = [r for r in runs if r.suite == suite and r.loaded == loaded]
            if not members:
                continue
            label = f"{suite}" + (" (under load: img/s not comparable)" if loaded else "")
            ax.scatter([r.train_images_per_s for r in members], [100 * r.test_accuracy for r in members],
                       marker=markers.get(suite, "o"), label=label,
                       facecolors="none" if loaded else f"C{suites.index(suite)}",
                       edgecolors=f"C{suites.index(suite)}")
            for run in members:
                ax.annotate(run.model, (run.train_images_per_s, 100 * run.test_accuracy), textcoords="offset points",
                            xytext=(4, 3), fontsize=7)
    from matplotlib import ticker

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25"
                                                      else ""))  # 20, 50, 200, 500: uncrowded
    ax.margins(x=0.2)  # room for the labels of the rightmost points
    ax.set_xlabel("training images/s (CPU)")
    ax.set_ylabel("Fashion-MNIST test accuracy (%)")
    ax.set_title("Backbones: accuracy against training throughput")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


PLOT_NAME = "backbones_accuracy_vs_throughput.png"


def backbone_sections(out_dir: Path, results: Path = BACKBONE_RESULTS) -> list[Section]:
    """The leaderboard section (table, "measured by" lines, the plot drawn into ``out_dir``); no section when
    ``results`` holds no backbone run."""
    runs = find_runs(results)
    if not runs:
        return []
    image = plot_leaderboard(runs, Path(out_dir) / PLOT_NAME)
    measured = "\n".join(f"- measured by: `{template}`" for template in command_templates(runs))
    note = ("Images/s of runs marked *loaded* were measured while other jobs shared the machine: compare them "
            "only with each other, never with the quiet rows. Accuracy does not depend on the load.")
    body = "\n\n".join([leaderboard_table(runs), f"Read from `{results}/backbones*/<model>/{RUN_FILE}`:\n{measured}",
                        note])
    return [Section("Backbones: Fashion-MNIST leaderboard", body, (image.name,))]


def write_leaderboard(out_dir: Path, results: Path = BACKBONE_RESULTS) -> list[Path]:
    """``backbones.md`` (the table) and the plot in ``out_dir``; ``ValueError`` when ``results`` holds no run."""
    from attnzoo.bench.report import write_report

    sections = backbone_sections(out_dir, results)
    if not sections:
        raise ValueError(f"--results {str(results)!r}: no backbone run found (expected "
                         f"backbones*/<model>/{RUN_FILE} under it)")
    report = write_report(Path(out_dir) / "backbones.md", "Backbone leaderboard", sections,
                          f"attnzoo leaderboard backbones --results {results} --out {out_dir}")
    return [report, Path(out_dir) / PLOT_NAME]
