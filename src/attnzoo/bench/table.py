"""Markdown tables of a run: the full table (every column) and the leaderboard (the headline columns).

Cells of skipped or failed measurements show ``skip [n]`` / ``fail [n]`` with the reason listed below the
table, so no case disappears and the table stays readable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """A header and the cell of a row; ``mode`` names the measurement whose status the cell reports and
    ``note`` an optional remark on the cell (listed below the table); an ``always`` cell is shown whatever the
    row's status."""

    header: str
    cell: Callable[[Row], str]
    mode: str | None = None
    note: Callable[[Row], str | None] | None = None
    always: bool = False


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def _ms_spread(mode: str) -> Callable[[Row], str]:
    def cell(row: Row) -> str:
        m = row["modes"][mode]
        return f"{_number(m['median_ms'])} ({_number(m['p10_ms'])}–{_number(m['p90_ms'])})"
    return cell


def _field(mode: str, key: str, digits: int = 3, suffix: str = "") -> Callable[[Row], str]:
    def cell(row: Row) -> str:
        value = row["modes"][mode][key]
        return "–" if value is None else _number(value, digits) + suffix
    return cell


def _error(row: Row) -> str:
    return f"{row['max_abs_error']:.1e}" if row["max_abs_error"] is not None else "–"


PROVENANCE = Column("measured", lambda r: r.get("provenance") or "–", always=True)
""""measured now" or "reused from <date> on <CPU>" (rows of a run without the cache, or saved before it: "–")."""

_FIRST = [Column("workload", lambda r: r["workload"]), Column("impl", lambda r: r["impl"], note=lambda r: r["note"])]

FULL_COLUMNS: tuple[Column, ...] = (
    *_FIRST,
    Column("fwd ms (p10–p90)", _ms_spread("forward"), "forward"),
    Column("fwd speed-up vs dense", _field("forward", "speedup", suffix="x"), "forward"),
    Column("fwd+bwd ms (p10–p90)", _ms_spread("forward_backward"), "forward_backward"),
    Column("fwd+bwd speed-up vs dense", _field("forward_backward", "speedup", suffix="x"), "forward_backward"),
    Column("first call ms (fwd)", _field("forward", "first_call_ms"), "forward"),
    Column("setup ms", lambda r: _number(r["setup_ms"])),
    Column("peak MB fwd", _field("forward", "peak_mb"), "forward"),
    Column("peak MB fwd+bwd", _field("forward_backward", "peak_mb"), "forward_backward"),
    Column("GFLOP/s fwd", _field("forward", "gflops"), "forward"),
    Column("% peak fwd", _field("forward", "pct_gemm_peak", 2), "forward"),
    Column("GFLOP/s fwd+bwd", _field("forward_backward", "gflops"), "forward_backward"),
    Column("% peak fwd+bwd", _field("forward_backward", "pct_gemm_peak", 2), "forward_backward"),
    Column("max err", _error, note=lambda r: r["error_note"]),
    PROVENANCE,
)

LEADERBOARD_COLUMNS: tuple[Column, ...] = (
    *_FIRST,
    Column("fwd ms", _field("forward", "median_ms"), "forward"),
    Column("fwd+bwd ms", _field("forward_backward", "median_ms"), "forward_backward"),
    Column("peak MB (fwd+bwd, else fwd)", lambda r: _number(
        (r["modes"]["forward_backward"]["peak_mb"] or r["modes"]["forward"]["peak_mb"]))),
    Column("GFLOP/s fwd", _field("forward", "gflops"), "forward"),
    Column("% GEMM peak fwd", _field("forward", "pct_gemm_peak", 2), "forward"),
    Column("speed-up vs dense fwd", _field("forward", "speedup", suffix="x"), "forward"),
    Column("speed-up vs dense fwd+bwd", _field("forward_backward", "speedup", suffix="x"), "forward_backward"),
    PROVENANCE,
)


class _Notes:
    """Numbered reasons, each listed once."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def ref(self, reason: str) -> int:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return self.reasons.index(reason) + 1


def markdown_table(rows: Sequence[Row], columns: Sequence[Column] = FULL_COLUMNS) -> str:
    """The rows as a markdown table, then the numbered reasons of every skipped or failed cell."""
    notes = _Notes()
    lines = ["| " + " | ".join(c.header for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            mode = row["modes"][column.mode] if column.mode else None
            status, reason = (mode["status"], mode["reason"]) if mode else (row["status"], row["reason"])
            if status == "ok" or column.always or (mode is None and column in _FIRST):
                remark = column.note(row) if column.note else None
                cells.append(column.cell(row) + (f" [{notes.ref(remark)}]" if remark else ""))
            else:
                cells.append(f"{'skip' if status == 'skipped' else 'fail'} [{notes.ref(reason)}]")
        lines.append("| " + " | ".join(cells) + " |")
    if notes.reasons:
        lines += ["", *(f"[{i}] {reason}" + "  " for i, reason in enumerate(notes.reasons, 1))]
    return "\n".join(lines)
