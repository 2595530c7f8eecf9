"""The ``attnzoo`` command: ``list`` the registered variants, ``bench`` a family, ``compare`` into a report.

    attnzoo list [--family F]
    attnzoo bench [--family local] [--quick] [--out DIR] [--impl NAME ...]
    attnzoo compare [--out reports/compare] [--quick] [--impl NAME ...] [--mqar-steps N] [--no-quality]
    attnzoo eval {mqar,austen,fashion-mnist,pixel-mnist} [--mixers a,b,c] [--steps N] [task settings] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from attnzoo.registry import Variant, families, variants

DEVICE = "cpu"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def describe_variants(found: Sequence[Variant]) -> str:
    """A table of the variants (name, family, paper year and arXiv id, layout, implementations), then per
    variant its paper title and each implementation's declared capabilities."""
    overview = [("VARIANT", "FAMILY", "YEAR", "ARXIV", "LAYOUT", "IMPLEMENTATIONS")]
    overview += [(v.name, v.family, str(v.paper.year), v.paper.arxiv, v.layout, ", ".join(v.implementations))
                 for v in found]
    blocks = [_table(overview)]
    for v in found:
        impls = _table([(f"    {impl.name}", impl.capabilities.describe(), impl.description)
                        for impl in v.implementations.values()])
        blocks.append(f"{v.name} — {v.paper.title} ({v.paper.year}, arXiv:{v.paper.arxiv})\n"
                      f"    {v.summary}\n{impls}")
    return "\n\n".join(blocks)


def _list(args: argparse.Namespace) -> int:
    print(describe_variants(variants(args.family)))
    return 0


def _run(family: str, subset: str, quick: bool, impls: Sequence[str] | None, progress: bool) -> dict:
    from attnzoo.bench import Settings, run_cases
    from attnzoo.bench.suites import SUITES

    if family not in SUITES:
        raise SystemExit(f"no benchmark suite for family {family!r}; suites: {sorted(SUITES)}")
    settings = Settings(target_s=0.2, max_repeats=10) if quick else Settings()
    return run_cases(SUITES[family](subset, impls), settings, progress=progress)


def _bench(args: argparse.Namespace) -> int:
    from attnzoo.bench import save
    from attnzoo.bench.report import speed_sections, write_report

    doc = _run(args.family, "quick" if args.quick else "full", args.quick, args.impl, not args.no_progress)
    out, stem = Path(args.out), f"{args.family}_{DEVICE}" + ("_quick" if args.quick else "")
    save(doc, out / f"{stem}.json")
    sections = speed_sections(doc, out, stem, leaderboard=False)
    report = write_report(out / f"{stem}.md", f"Benchmark: {args.family} family, {DEVICE}", sections, args.command)
    print(f"wrote {out / f'{stem}.json'}, {report} and plots")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from attnzoo.bench import save
    from attnzoo.bench.report import speed_sections, write_report
    from attnzoo.bench.suites import SUITES

    out, sections, shared = Path(args.out), [], []
    for family in SUITES:
        doc = _run(family, "quick" if args.quick else "compare", args.quick, args.impl, not args.no_progress)
        save(doc, out / f"speed_{family}.json")
        leaderboard, plots, *shared = speed_sections(doc, out, f"speed_{family}", leaderboard=True)
        sections += [leaderboard, plots]
    quality = [] if args.no_quality else _compare_quality(args, out)
    report = write_report(out / "report.md", "attnzoo compare: which attention should I use here?",
                          quality[:2] + sections + shared + quality[2:], args.command)
    print(f"wrote {report}")
    return 0


def _compare_quality(args: argparse.Namespace, out: Path) -> list:
    """Run the MQAR sweep of ``compare`` and return its report sections."""
    from attnzoo.models.mixers import SEQUENCE_LAYOUT, usable_mixers
    from attnzoo.tasks.mqar_eval import MQARTask
    from attnzoo.tasks.sweep import COMPARE_SETTINGS, mqar_sweep, quality_sections
    from attnzoo.train import TrainConfig

    mixers = (args.mqar_mixers.split(",") if args.mqar_mixers
              else usable_mixers((SEQUENCE_LAYOUT,), causal=True))
    settings = COMPARE_SETTINGS[:2] if args.quick else COMPARE_SETTINGS
    task = MQARTask(train_examples=10_000, test_examples=500, batch_size=args.mqar_batch_size)
    train_config = TrainConfig(steps=args.mqar_steps // 3 if args.quick else args.mqar_steps, lr=args.mqar_lr,
                               warmup_steps=args.mqar_steps // 10, progress=False, device=DEVICE)
    try:
        rows = mqar_sweep(mixers, settings, task, train_config, out / "mqar", progress=not args.no_progress,
                          command=args.command)
    except ValueError as error:
        raise SystemExit(f"attnzoo compare: {error}") from None
    return quality_sections(rows, out, task, train_config)


def _eval(args: argparse.Namespace) -> int:
    from attnzoo.tasks import TASKS
    from attnzoo.tasks.harness import evaluate_mixers, markdown, score_metrics
    from attnzoo.train import TrainConfig

    task_class = TASKS[args.task]
    task = task_class(**{f.name: getattr(args, f.name) for f in task_fields(task_class)})
    mixers = [name.strip() for name in args.mixers.split(",") if name.strip()]
    train_config = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=min(100, args.steps // 10),
                               seed=args.seed, progress=not args.no_progress, device=DEVICE,
                               ckpt_interval=args.ckpt_interval)
    try:
        rows = evaluate_mixers(task, mixers, train_config, args.out, progress=not args.no_progress,
                               command=args.command, resume=args.resume)
    except ValueError as error:
        raise SystemExit(f"attnzoo eval {args.task}: {error}") from None
    print(markdown(rows, score_metrics(rows)))
    print(f"wrote {Path(args.out) / f'{task.name}.json'} and {Path(args.out) / f'{task.name}.md'}")
    return 0


def task_fields(task_class: type) -> list[dataclasses.Field]:
    """The settings of a task class that the command line exposes (its public dataclass fields)."""
    return [f for f in dataclasses.fields(task_class) if not f.name.startswith("_")]


def _add_eval_parsers(sub: argparse._SubParsersAction) -> None:
    from attnzoo.tasks import TASKS

    evaluate = sub.add_parser("eval", help="train and score mixers on a quality task (JSON + markdown table)")
    tasks = evaluate.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, task_class in TASKS.items():
        command = tasks.add_parser(name, help=task_class.title,
                                   description=sys.modules[task_class.__module__].__doc__.splitlines()[0])
        command.add_argument("--mixers", default=",".join(task_class.default_mixers),
                             help=f"comma-separated mixer names (default: {','.join(task_class.default_mixers)})")
        command.add_argument("--steps", type=int, default=task_class.default_steps,
                             help=f"optimizer steps per mixer (default: {task_class.default_steps})")
        command.add_argument("--lr", type=float, default=task_class.default_lr,
                             help=f"peak learning rate (default: {task_class.default_lr})")
        command.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batch order")
        for f in task_fields(task_class):
            flag = "--" + f.name.replace("_", "-")
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            if kind == "bool":
                command.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                     help=f"(default: {f.default})")
            else:
                command.add_argument(flag, type={"int": int, "float": float, "str": str}[kind], default=f.default,
                                     help=f"(default: {f.default})")
        command.add_argument("--out", default="reports/eval", help="output folder (default: reports/eval)")
        command.add_argument("--resume", action="store_true",
                             help="continue each mixer's run from its newest checkpoint in OUT/runs (exact)")
        command.add_argument("--ckpt-interval", type=int, default=500,
                             help="steps between checkpoints (default: 500; a final one is always written)")
        command.add_argument("--no-progress", action="store_true", help="no progress bars")
        command.set_defaults(handler=_eval)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnzoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command_name", required=True)
    listing = sub.add_parser("list", help="every registered variant with its implementations and capabilities")
    listing.add_argument("--family", choices=families(), help="only this family")
    listing.set_defaults(handler=_list)
    for name, handler, out, help_text in (
            ("bench", _bench, "benchmarks/results", "speed and memory benchmark of a family (JSON, PNG, markdown)"),
            ("compare", _compare, "reports/compare", "comparison report (report.md + plots)")):
        command = sub.add_parser(name, help=help_text)
        if name == "bench":
            command.add_argument("--family", default="local", help="family to benchmark (default: local)")
        command.add_argument("--quick", action="store_true", help="small subset, short timing (a minute or two)")
        command.add_argument("--out", default=out, help=f"output folder (default: {out})")
        command.add_argument("--impl", action="append", metavar="NAME",
                             help="only this implementation (repeatable; the dense baseline is always run)")
        command.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name == "compare":
            command.add_argument("--mqar-steps", type=int, default=400,
                                 help="training steps per MQAR run of the quality sweep (default: 400)")
            command.add_argument("--mqar-lr", type=float, default=1e-2,
                                 help="peak learning rate of the MQAR runs (default: 1e-2, the top of Zoology's "
                                      "sweep: softmax reaches 99.9%% at 256 tokens in 400 steps of 32)")
            command.add_argument("--mqar-batch-size", type=int, default=32,
                                 help="examples per MQAR training step (default: 32)")
            command.add_argument("--mqar-mixers", metavar="A,B,C",
                                 help="mixers of the quality sweep (default: every causal sequence mixer)")
            command.add_argument("--no-quality", action="store_true", help="speed and memory only")
        command.set_defaults(handler=handler)
    _add_eval_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.command = "attnzoo " + " ".join(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
