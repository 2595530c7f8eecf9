"""Plots of a run (matplotlib, Agg backend): time and peak memory against tokens, log-log, one line per
implementation, one row of panels per workload series, forward and forward + backward side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnzoo.bench.results import MODE_LABELS, MODES

Row = dict[str, Any]


def pyplot():  # noqa: ANN201
    """``matplotlib.pyplot`` on the Agg backend, imported on first use (matplotlib is the optional extra
    ``[plot]``)."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("plots need matplotlib, an optional extra: pip install 'attnzoo[plot]'") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(rows: Sequence[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row["series"], []).append(row)
    return grouped


def _impls(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(row["impl"] for row in rows))


def _minor_labels(ax: Any) -> Any:
    """Label minor ticks only when the axis spans less than ~1.5 decades (else they crowd)."""
    def label(y: float, _: int) -> str:
        low, high = ax.get_ylim()
        return f"{y:g}" if high / low < 30 else ""
    from matplotlib import ticker

    return ticker.FuncFormatter(label)


def plot_metric(rows: Sequence[Row], key: str, ylabel: str, path: Path, title: str) -> Path:
    """``key`` of each mode (``median_ms`` or ``peak_mb``) against tokens; a line per implementation."""
    series = _series(rows)
    impls = _impls(rows)
    colors = {impl: f"C{i}" for i, impl in enumerate(impls)}
    plt = pyplot()
    from matplotlib import ticker

    fig, axes = plt.subplots(len(series), len(MODES), figsize=(11, 3.2 * len(series)), squeeze=False)
    for (name, members), panel_row in zip(series.items(), axes):
        tokens = sorted({r["tokens"] for r in members})
        for mode, ax in zip(MODES, panel_row):
            missing = []
            for impl in impls:
                points = sorted((r["tokens"], r["modes"][mode][key]) for r in members
                                if r["impl"] == impl and r["modes"][mode]["status"] == "ok")
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, marker="o", color=colors[impl], label=impl)
                elif any(r["impl"] == impl for r in members):
                    missing.append(impl)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(tokens, [str(t) for t in tokens])
            ax.xaxis.set_minor_locator(ticker.NullLocator())
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))
            ax.yaxis.set_minor_formatter(_minor_labels(ax))
            ax.tick_params(axis="y", which="minor", labelsize=7)
            if missing:
                ax.text(0.01, 0.01, "not measured: " + ", ".join(missing) + " (see table)", fontsize=7,
                        transform=ax.transAxes, va="bottom")
            ax.set_title(f"{name} — {MODE_LABELS[mode]}", fontsize=10)
            ax.set_xlabel("tokens")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(doc: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    """``{stem}_time.png`` and ``{stem}_memory.png`` in ``out_dir``."""
    rows = doc["rows"]
    machine = doc["machine"]
    where = f"{machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}"
    return [plot_metric(rows, "median_ms", "median ms", out_dir / f"{stem}_time.png", f"Time (fp32) — {where}"),
            plot_metric(rows, "peak_mb", "peak MB (torch allocations)", out_dir / f"{stem}_memory.png",
                        f"Peak memory per call — {where}")]
