"""An MQAR sweep over sequence lengths for many mixers, and its report: the quality half of ``attnzoo compare``.

:func:`mqar_sweep` runs :class:`~attnzoo.tasks.MQARTask` at each ``(seq_len, num_kv_pairs)`` setting for every
mixer with the same training budget (each setting's runs under ``out_dir/L<seq_len>/``) and returns the rows,
each with its ``seq_len`` and ``num_kv_pairs``. :func:`quality_sections` turns them into the report's
leaderboard (accuracy per length, training throughput at the longest length) and two plots: accuracy against
sequence length, and accuracy against training throughput at the longest length (both measured on the same
runs, so they answer "how much recall do I give up for how much speed" on one piece of work).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from attnzoo.bench.plots import pyplot
from attnzoo.bench.report import Section
from attnzoo.tasks.harness import evaluate_mixers, resolve_mixer_options
from attnzoo.tasks.mqar_eval import MQARTask
from attnzoo.train import TrainConfig

COMPARE_SETTINGS: tuple[tuple[int, int], ...] = ((64, 4), (128, 8), (256, 16))
"""(seq_len, num_kv_pairs) of the sweep in ``attnzoo compare``: Zoology's Figure 2 settings up to 256."""


def sweep_tasks(mixers: Sequence[str], settings: Sequence[tuple[int, int]], task: MQARTask) -> list[MQARTask]:
    """``task`` at each ``(seq_len, num_kv_pairs)`` setting, every mixer checked usable at every one of them
    (``ValueError`` naming the problems before anything trains)."""
    if not settings:
        raise ValueError("no (seq_len, num_kv_pairs) settings given")
    tasks = [replace(task, seq_len=seq_len, num_kv_pairs=pairs) for seq_len, pairs in settings]
    for setting in tasks:
        resolve_mixer_options(setting, mixers)
    return tasks


def mqar_sweep(mixers: Sequence[str], settings: Sequence[tuple[int, int]], task: MQARTask,
               train_config: TrainConfig, out_dir: str | Path, *, progress: bool = True,
               command: str | None = None) -> list[dict[str, Any]]:
    """Run ``task`` (its ``seq_len`` / ``num_kv_pairs`` replaced per setting) for every mixer at every setting.

    Writes each setting's ``mqar.json`` / ``mqar.md`` under ``out_dir/L<seq_len>/`` and the rows of all of them
    to ``out_dir/mqar_sweep.json``; returns those rows (``seq_len`` and ``num_kv_pairs`` added). Every mixer is
    checked at every setting first (:func:`sweep_tasks`).
    """
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for setting in sweep_tasks(mixers, settings, task):
        seq_len, pairs = setting.seq_len, setting.num_kv_pairs
        found = evaluate_mixers(setting, mixers, train_config, out / f"L{seq_len}", progress=progress,
                                command=command)
        rows += [{"seq_len": seq_len, "num_kv_pairs": pairs, **row} for row in found]
    out.mkdir(parents=True, exist_ok=True)
    (out / "mqar_sweep.json").write_text(json.dumps({"command": command, "train_config": train_config.to_dict(),
                                                     "rows": rows}, indent=2, default=str) + "\n")
    return rows


def _by_mixer(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, Mapping[str, Any]]]:
    table: dict[str, dict[int, Mapping[str, Any]]] = {}
    for row in rows:
        table.setdefault(row["mixer"], {})[row["seq_len"]] = row
    return table


def leaderboard(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: a row per mixer (best accuracy at the longest length first), a column per length, then the
    training throughput (tokens/s) and parameter count at the longest length."""
    lengths = sorted({r["seq_len"] for r in rows})
    longest = lengths[-1]
    table = _by_mixer(rows)
    order = sorted(table, key=lambda m: -table[m][longest]["test_accuracy"])
    pairs = {r["seq_len"]: r["num_kv_pairs"] for r in rows}
    header = ["mixer", *(f"acc L={n} ({pairs[n]} kv)" for n in lengths), f"train tokens/s L={longest}", "params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mixer in order:
        accs = [f"{100 * table[mixer][n]['test_accuracy']:.1f}%" for n in lengths]
        last = table[mixer][longest]
        lines.append("| " + " | ".join([mixer, *accs, f"{last['train_items_per_s']:,.0f}", f"{last['params']:,}"])
                     + " |")
    return "\n".join(lines)


def plot_accuracy_vs_length(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Test accuracy against sequence length, a line per mixer."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for i, (mixer, by_len) in enumerate(_by_mixer(rows).items()):
        lengths = sorted(by_len)
        ax.plot(lengths, [100 * by_len[n]["test_accuracy"] for n in lengths], marker="o", color=f"C{i % 10}",
                linestyle="-" if i < 10 else "--", label=mixer)
    lengths = sorted({r["seq_len"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("sequence length (kv pairs = length / 16)")
    ax.set_ylabel("MQAR test accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("MQAR recall against sequence length (same budget per run)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_quality_vs_throughput(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Accuracy at the longest length against training throughput on the same runs, a point per mixer."""
    longest = max(r["seq_len"] for r in rows)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for i, row in enumerate(r for r in rows if r["seq_len"] == longest):
        ax.scatter(row["train_items_per_s"], 100 * row["test_accuracy"], color=f"C{i % 10}", s=40, alpha=0.8,
                   marker="os^Dv<>ph*"[i % 10], label=row["mixer"])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xscale("log")
    ax.set_xlabel(f"training throughput at L={longest} (tokens/s, forward + backward + optimizer)")
    ax.set_ylabel(f"MQAR test accuracy at L={longest} (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.set_title("Quality against throughput (up and right is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def quality_sections(rows: Sequence[Mapping[str, Any]], out_dir: Path, task: MQARTask,
                     train_config: TrainConfig) -> list[Section]:
    """The report's quality sections: leaderboard, the two plots, and the settings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [plot_accuracy_vs_length(rows, out_dir / "mqar_accuracy_vs_length.png").name,
              plot_quality_vs_throughput(rows, out_dir / "mqar_quality_vs_throughput.png").name]
    settings = task.settings_markdown(train_config).replace(
        f"(seq_len {task.seq_len}, {task.num_kv_pairs} kv pairs)",
        "(seq_len, kv pairs) in " + ", ".join(f"({r['seq_len']}, {r['num_kv_pairs']})"
                                              for r in rows if r["mixer"] == rows[0]["mixer"]))
    return [Section("Leaderboard: quality (MQAR recall, CPU training budget)", leaderboard(rows)),
            Section("Quality plots", "Throughput is measured on the same training runs (2 CPU threads).", images),
            Section("Quality settings", settings + "\n- per-setting tables: `mqar/L*/mqar.md`; all rows: "
                                                   "`mqar/mqar_sweep.json`")]
