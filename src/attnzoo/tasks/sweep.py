"""The MQAR rows of ``attnzoo compare`` across sequence lengths, as a leaderboard and two plots.

Rows are MQAR results (``mixer``, ``seq_len``, ``num_kv_pairs``, ``test_accuracy``, ``train_items_per_s``,
``params``), possibly not every mixer at every length (the compare budget may leave some out: their cells say
"—"). :func:`mqar_sections` gives the leaderboard (accuracy per length, training throughput at the mixer's
longest length) and two plots: accuracy against sequence length, and accuracy against training throughput at
the longest length (both measured on the same runs, so they answer "how much recall do I give up for how much
speed" on one piece of work).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attnzoo.bench.plots import pyplot
from attnzoo.bench.report import Section

COMPARE_SETTINGS: tuple[tuple[int, int], ...] = ((64, 4), (128, 8), (256, 16))
"""(seq_len, num_kv_pairs) of the sweep in ``attnzoo compare``: Zoology's Figure 2 settings up to 256."""


def _by_mixer(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, Mapping[str, Any]]]:
    table: dict[str, dict[int, Mapping[str, Any]]] = {}
    for row in rows:
        table.setdefault(row["mixer"], {})[row["seq_len"]] = row
    return table


def leaderboard(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: a row per mixer (best accuracy at the longest length first; a mixer without that length after
    those with it), a column per length ("—" where the mixer did not run), then the training throughput
    (tokens/s) and parameter count at the mixer's longest length."""
    lengths = sorted({r["seq_len"] for r in rows})
    table = _by_mixer(rows)

    def rank(mixer: str) -> tuple[float, ...]:
        return tuple(-table[mixer][n]["test_accuracy"] if n in table[mixer] else 1.0 for n in reversed(lengths))

    order = sorted(table, key=rank)
    pairs = {r["seq_len"]: r["num_kv_pairs"] for r in rows}
    header = ["mixer", *(f"acc L={n} ({pairs[n]} kv)" for n in lengths), "train tokens/s (longest L)", "params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mixer in order:
        accs = [f"{100 * table[mixer][n]['test_accuracy']:.1f}%" if n in table[mixer] else "—" for n in lengths]
        last = table[mixer][max(table[mixer])]
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


def mqar_sections(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Section]:
    """The report's MQAR sections: the leaderboard and the two plots (drawn into ``out_dir``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [plot_accuracy_vs_length(rows, out_dir / "mqar_accuracy_vs_length.png").name,
              plot_quality_vs_throughput(rows, out_dir / "mqar_quality_vs_throughput.png").name]
    return [Section("Leaderboard: quality (MQAR recall, CPU training budget)", leaderboard(rows)),
            Section("Quality plots", "Throughput is measured on the same training runs.", images)]
