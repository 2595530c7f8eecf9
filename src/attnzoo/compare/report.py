"""The report of ``attnzoo compare``: a "pick this when" line per family derived from the numbers, what the run
covered (measured now, reused from the cache, left out by the budget), the quality tables and plots of every
task that ran, and the speed and memory leaderboard of every family.

Every number in the summary lines comes from a row of the tables below it; a family with no row in a column
says so instead of guessing. Speed ratios are always against a baseline measured in the same benchmark run on
this machine (cached rows are keyed by machine kind, so a row from another machine is never mixed in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attnzoo.bench.report import Section, conventions_section, machine_section, speed_sections
from attnzoo.compare.engine import Outcome
from attnzoo.compare.plan import Plan
from attnzoo.registry import FAMILIES, get_variant
from attnzoo.tasks import TASKS
from attnzoo.tasks.harness import markdown, score_metrics

DENSE = "softmax"


def _task_rows(rows: Sequence[Mapping[str, Any]], task: str) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["task"] == task]


def _best(rows: Sequence[Mapping[str, Any]], metric: str, higher: bool) -> Mapping[str, Any] | None:
    return max(rows, key=lambda r: r[metric] if higher else -r[metric]) if rows else None


CAUSAL_TASKS = ("mqar", "austen")


def reads_the_future(mixer: str) -> bool:
    """Whether a causal mixer's selection of keys reads later tokens (``Variant.causal_selection=False``: routing
    attention's balanced clusters), so that its causal-task rows are not comparable with causal mixers'."""
    try:
        return not get_variant(mixer).causal_selection
    except KeyError:  # a model name (block_transformer), not a variant
        return False


def _quality_claims(family: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The family's best mixer on each quality task that has rows for it, beside the dense baseline; causal-task
    rows of mixers that read the future are left out (:func:`reads_the_future`)."""
    claims = []
    rows = [r for r in rows if not (r["task"] in CAUSAL_TASKS and reads_the_future(r["mixer"]))]
    mqar = _task_rows(rows, "mqar")
    lengths = sorted({r["seq_len"] for r in mqar if r["family"] == family and r["mixer"] != DENSE})
    if lengths:
        at = [r for r in mqar if r["seq_len"] == lengths[-1]]
        best = _best([r for r in at if r["family"] == family and r["mixer"] != DENSE], "test_accuracy", True)
        dense = next((r for r in at if r["mixer"] == DENSE), None)
        versus = f"; softmax {100 * dense['test_accuracy']:.0f}%" if dense else ""
        claims.append(f"for recall `{best['mixer']}` ({100 * best['test_accuracy']:.0f}% MQAR at L={lengths[-1]}"
                      f"{versus})")
    for task, what, fmt in (("austen", "language modelling", "{:.2f} bits/byte on Austen"),
                            ("fashion-mnist", "images", "{:.1%} Fashion-MNIST")):
        task_class = TASKS[task]
        found = _task_rows(rows, task)
        best = _best([r for r in found if r["family"] == family and r["mixer"] != DENSE], task_class.metric,
                     task_class.higher_is_better)
        if best is None:
            continue
        dense = next((r for r in found if r["mixer"] == DENSE), None)
        versus = f"; softmax {fmt.format(dense[task_class.metric]).split(' ')[0]}" if dense else ""
        claims.append(f"for {what} `{best['mixer']}` ({fmt.format(best[task_class.metric])}{versus})")
    return claims


def _speed_claim(family: str, doc: Mapping[str, Any] | None) -> list[str]:
    """The family's fastest forward + backward against its workload's baseline, at its largest workload."""
    if doc is None:
        return []
    rows = [r for r in doc["rows"] if r["family"] == family and not r["baseline"] and r["status"] == "ok"
            and (r["modes"].get("forward_backward") or {}).get("speedup")]
    if not rows:
        return []
    largest = max(r["tokens"] for r in rows)
    best = max((r for r in rows if r["tokens"] == largest), key=lambda r: r["modes"]["forward_backward"]["speedup"])
    mode = best["modes"]["forward_backward"]
    if mode["speedup"] <= 1:
        return [f"for speed: no implementation beat its dense baseline in this run (best `{best['variant']}` "
                f"[{best['impl']}], {mode['speedup']:.2g}x at {best['workload']})"]
    memory = f", {mode['memory_ratio']:.2g}x its peak memory" if mode.get("memory_ratio") else ""
    return [f"for speed `{best['variant']}` [{best['impl']}] ({mode['speedup']:.2g}x the baseline's forward + "
            f"backward at {best['workload']}{memory})"]


def pick_lines(quality_rows: Sequence[Mapping[str, Any]], speed_doc: Mapping[str, Any] | None,
               families: Sequence[str]) -> str:
    """One markdown bullet per family: what to pick for recall, language modelling, images and speed, each
    with its number and the dense baseline's."""
    lines = []
    for family in families:
        claims = _quality_claims(family, quality_rows) + _speed_claim(family, speed_doc)
        text = "; ".join(claims) if claims else "no row of this family ran (the budget left them out: `--full`)"
        leaking = sorted({r["mixer"] for r in quality_rows if r["family"] == family and r["task"] in CAUSAL_TASKS
                          and reads_the_future(r["mixer"])})
        if leaking:
            text += (f" ({', '.join(f'`{m}`' for m in leaking)}: its MQAR and Austen rows read later tokens through "
                     "its selection of keys, so they are left out of these picks)")
        lines.append(f"- **{family}** ({FAMILIES[family]}): {text}.")
    return "\n".join(lines)


def coverage(plan: Plan, outcome: Outcome) -> str:
    """Which rows ran now, which were reused and which the budget left out, and planned against measured time."""
    reused = sum(1 for r in outcome.quality_rows if r.get("provenance", "").startswith("reused"))
    speed_rows = outcome.speed_doc["rows"] if outcome.speed_doc else []
    speed_reused = sum(1 for r in speed_rows if (r.get("provenance") or "").startswith("reused"))
    budget = "none (`--full`)" if plan.budget_s is None else f"{plan.budget_s / 60:.1f} min"
    lines = [f"- budget: {budget}; planned {plan.wall_s / 60:.1f} min with {plan.workers} training worker(s); "
             f"measured: training {outcome.quality_s / 60:.1f} min, speed {outcome.speed_s / 60:.1f} min; jobs took "
             f"{outcome.slowdown:.2f}x their estimates",
             f"- quality rows: {len(outcome.quality_rows)} ({reused} reused from the cache, "
             f"{len(outcome.quality_rows) - reused} measured now)",
             f"- speed rows: {len(speed_rows)} ({speed_reused} reused from the cache, "
             f"{len(speed_rows) - speed_reused} measured now)"]
    if outcome.dropped:
        lines.append(f"- dropped while running to stay in the budget (jobs ran {outcome.slowdown:.2f}x their "
                     f"estimates): {len(outcome.dropped)} jobs")
        lines += _by_family(outcome.dropped)
    if plan.left_out:
        more = sum(p.estimate_s for p in plan.left_out) / 60
        lines.append(f"- left out by the budget ({len(plan.left_out)} jobs, ~{more:.0f} min more; `attnzoo compare "
                     "--full` or a larger `--budget` runs them):")
        lines += _by_family(plan.left_out)
    if not plan.left_out and not outcome.dropped:
        lines.append("- every job of the chosen families ran")
    return "\n".join(lines)


def _by_family(planned: Sequence[Any]) -> list[str]:
    by_family: dict[str, list[str]] = {}
    for entry in planned:
        by_family.setdefault(entry.job.family, []).append(entry.job.label)
    return [f"  - {family}: " + ", ".join(f"`{label}`" for label in labels) for family, labels in by_family.items()]


def quality_task_sections(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Section]:
    """The MQAR leaderboard and plots (every length), then a table per other task, then the committed backbone
    leaderboard when ``benchmarks/quality/backbones*/`` holds runs (:mod:`attnzoo.compare.leaderboard`)."""
    from attnzoo.compare.leaderboard import backbone_sections
    from attnzoo.tasks.sweep import mqar_sections

    sections = []
    mqar = _task_rows(rows, "mqar")
    if mqar:
        sections += mqar_sections(mqar, out_dir)
    for task in ("austen", "fashion-mnist"):
        found = _task_rows(rows, task)
        if found:
            task_class = TASKS[task]
            ordered = sorted(found, key=lambda r: -r[task_class.metric] if task_class.higher_is_better
                             else r[task_class.metric])
            table = markdown(ordered, [m for m in score_metrics(ordered) if m not in _BOOKKEEPING])
            sections.append(Section(f"Quality: {task_class.title}", table.replace(
                "train items/s", f"train {task_class.item_name}/s")))
            if task == "fashion-mnist":
                sections += attention_sections(out_dir)
    return sections + backbone_sections(out_dir)


def attention_sections(out_dir: Path) -> list[Section]:
    """One attention picture per Fashion-MNIST mixer trained in this run (:mod:`attnzoo.inspect.figure`, its
    checkpoints under ``out_dir / "runs"``); none when no checkpoint is there (every row reused from the cache)."""
    from attnzoo.inspect.figure import FIGURE, write_attention_figure

    try:
        path = write_attention_figure(out_dir / "runs", out_dir)
    except ImportError as error:  # matplotlib, the optional [plot] extra
        return [Section("Attention on one Fashion-MNIST image", f"not drawn: {error}")]
    if path is None:
        return []
    return [Section("Attention on one Fashion-MNIST image",
                    "Each trained mixer's attention rollout (Abnar & Zuidema 2020) on the same test image, the mean "
                    "over query rows on the token grid (the ViT mean-pools its tokens); mixers without attention "
                    "maps say why. Values in `attention.json`; `attnzoo inspect` redraws it.", (FIGURE,))]


_BOOKKEEPING = {"task", "setting", "family", "job_s", "provenance", "seq_len", "num_kv_pairs"}


def speed_family_sections(doc: Mapping[str, Any] | None, out_dir: Path) -> list[Section]:
    """A speed and memory leaderboard with its plots per family, then the machine and conventions once."""
    if doc is None:
        return []
    sections = []
    for family in dict.fromkeys(row["family"] for row in doc["rows"]):
        part = {**doc, "rows": [row for row in doc["rows"] if row["family"] == family]}
        leaderboard, plots, *_ = speed_sections(part, out_dir, f"speed_{family}", leaderboard=True)
        sections += [leaderboard, plots]
    return sections + [machine_section(dict(doc)), conventions_section(dict(doc))]
