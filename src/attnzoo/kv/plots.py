"""The figures of ``attnzoo eval kv`` (matplotlib, Agg backend): perplexity against KV bytes per token (a panel
per context, a line per policy, solid for ``chunk`` and dashed for ``decode`` scoring), and needle-in-a-haystack
accuracy against KV compression (full attention's KV bytes over the policy's, so ZipVL's adaptive and
mixed-precision caches sit on the same axis as the fixed ratios)."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["plot_needle", "plot_perplexity", "write_plots"]

_LINESTYLES = {"chunk": "-", "decode": "--"}
_MARKERS = "osD^vP"


def _style(index: int) -> dict:
    """Colour, marker and a size shrinking with ``index``, so that policies drawn on top of each other (equal
    accuracies) stay visible."""
    return {"color": f"C{index}", "marker": _MARKERS[index % len(_MARKERS)], "markersize": 11 - 1.2 * (index % 6)}


def _plain_log_ticks(ax: object, values: list[float]) -> None:
    """Ticks at the powers of two up to past the largest of ``values``, written plainly (1, 2, 4, 8)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = [2.0**i for i in range(int(math.log2(max(values))) + 2)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _policies(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["policy"] for r in rows if r["policy"] != "full"))


def _panels(rows: list[dict], what: str) -> tuple[object, object, list, list[int], dict[str, dict]]:
    """pyplot, a figure with one panel per context of ``rows`` (``ValueError`` naming ``what`` when there are
    none), its axes, the contexts and each policy's style."""
    plt = _pyplot()
    contexts = sorted({r["context"] for r in rows})
    if not contexts:
        raise ValueError(f"report has no {what} rows to plot")
    fig, axes = plt.subplots(1, len(contexts), figsize=(5 * len(contexts), 4), squeeze=False)
    styles = {name: _style(i) for i, name in enumerate(_policies(rows))}
    return plt, fig, list(axes[0]), contexts, styles


def plot_perplexity(report: dict, path: str | Path) -> Path:
    """Perplexity against KV bytes/token from ``report["rows"]``, one panel per context; full attention a star."""
    rows = report["rows"]
    plt, fig, axes, contexts, styles = _panels(rows, "perplexity")
    for ax, context in zip(axes, contexts, strict=True):
        for mode in dict.fromkeys(r["mode"] for r in rows):
            here = [r for r in rows if r["context"] == context and r["mode"] == mode]
            for name, style in styles.items():
                points = sorted((r["kv_bytes_per_token"], r["perplexity"]) for r in here if r["policy"] == name)
                if points:
                    ax.plot(*zip(*points, strict=True), _LINESTYLES.get(mode, ":"), label=f"{name} ({mode})",
                            **style)
            for r in (r for r in here if r["policy"] == "full"):
                ax.plot(r["kv_bytes_per_token"], r["perplexity"], "*", color="black", markersize=12,
                        label=f"full ({mode})")
        ax.set(xscale="log", yscale="log", xlabel="KV bytes per context token", ylabel="perplexity",
               title=f"context {context}")
        ax.grid(True, which="both", alpha=0.3)
    return _save(fig, axes, plt, path)


def plot_needle(report: dict, path: str | Path) -> Path:
    """Needle exact-match accuracy against KV compression from ``report["needle"]``, one panel per context."""
    rows = report.get("needle") or []
    plt, fig, axes, contexts, styles = _panels(rows, "needle")
    for ax, context in zip(axes, contexts, strict=True):
        here = [r for r in rows if r["context"] == context]
        full = next((r for r in here if r["policy"] == "full"), None)
        if full is None:
            raise ValueError(f"needle rows of context {context} have no 'full' row, the compression reference")
        for name, style in styles.items():
            points = sorted((full["kv_bytes_per_token"] / r["kv_bytes_per_token"], r["accuracy"])
                            for r in here if r["policy"] == name)
            if points:
                ax.plot(*zip(*points, strict=True), "-", label=name, alpha=0.75, **style)
        ax.plot(1.0, full["accuracy"], "*", color="black", markersize=12, label="full")
        ax.set_xscale("log")
        _plain_log_ticks(ax, [1.0] + [full["kv_bytes_per_token"] / r["kv_bytes_per_token"] for r in here])
        ax.set(xlabel="KV compression (full bytes / policy bytes)", ylabel="exact-match accuracy",
               ylim=(-0.05, 1.05), title=f"needle, context {context}")
        ax.grid(True, which="both", alpha=0.3)
    return _save(fig, axes, plt, path)


def _save(fig: object, axes: list, plt: object, path: str | Path) -> Path:
    """The legend on the last panel, then the figure written to ``path`` and closed."""
    axes[-1].legend(fontsize=7, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(report: dict, folder: str | Path) -> list[Path]:
    """``kv_perplexity.png`` and, when the report has needle rows, ``kv_needle.png`` under ``folder``."""
    folder = Path(folder)
    paths = [plot_perplexity(report, folder / "kv_perplexity.png")]
    if report.get("needle"):
        paths.append(plot_needle(report, folder / "kv_needle.png"))
    return paths
