"""The ``attnzoo`` command: ``list`` the registered variants, ``bench`` a family, ``compare`` into a report.

    attnzoo list [NAME] [--family F] [--markdown]
    attnzoo bench [--family local] [--quick] [--out DIR] [--impl NAME ...] [--device cpu]
                  [--cache DIR | --no-cache] [--fresh]
    attnzoo bench --op NAME [--batch B] [--heads H] [--length N | --grid X Y] [--head-dim D] [--opt KEY=VALUE ...]
                  [--backward] [--impl NAME ...] [--out DIR] [--device cpu]
    attnzoo compare [--out reports/compare] [--budget 15m | --full] [--families A,B] [--tasks A,B] [--mixers A,B]
                    [--workers N] [--engine local|submitit] [--plan] [--quick] [--impl NAME ...] [--no-quality]
                    [--no-speed] [--cache DIR | --no-cache] [--fresh] [--device cpu]
    attnzoo eval {mqar,austen,fashion-mnist,pixel-mnist} [--mixers a,b,c] [--steps N] [task settings] [--out DIR]
                 [--device cpu]
    attnzoo eval fashion-mnist --models a,b,c [--steps N] [--out DIR]     (the registered backbones)
    attnzoo eval kv [--quick] [--no-needle] [--no-timing] [--out DIR]  (KV policies on SmolLM2, attnzoo.kv.evaluation)
    attnzoo leaderboard backbones [--results benchmarks/quality] [--out benchmarks/quality]
    attnzoo demo NAME [--full] [--seed S] [--out DIR] [demo settings]   (a paper's system end to end, attnzoo.systems)

Every setting is checked before the first measurement or training step (implementation names, mixers, training
and task settings, the device, a writable ``--out``); bad input exits with a message naming the argument, the
value and what is expected.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from attnzoo.bench.store import writable_folder
from attnzoo.registry import Variant, families, get_variant, variants
from attnzoo.train import DiskFullError, NonFiniteLossError, TrainConfig

DEFAULT_DEVICE = "cpu"
INPUT_ERRORS = (ValueError, NonFiniteLossError, DiskFullError)
"""Errors that report bad input or a failed run in words (no traceback): raised as ``SystemExit(message)``."""


@contextmanager
def reporting(command: str) -> Iterator[None]:
    """Turn :data:`INPUT_ERRORS` inside the block into ``SystemExit("command: message")``."""
    try:
        yield
    except INPUT_ERRORS as error:
        raise SystemExit(f"{command}: {error}") from None


def device_argument(name: str) -> str:
    """``--device``: ``cpu`` or ``cuda[:N]`` of a CUDA device this machine has (``argparse`` type)."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"{name!r} is not a device ({error}); expected 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{name!r}: CUDA is not available on this machine (torch "
                                             f"{torch.__version__}); expected 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{name!r}: this machine has {torch.cuda.device_count()} CUDA "
                                             f"device(s); expected cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{name!r}: expected 'cpu' or 'cuda[:N]'")
    return name


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def describe_variants(found: Sequence[Variant]) -> str:
    """A table of the variants (name, family, paper year and arXiv id, layout, implementations), then per
    variant its paper title, its layer's arguments with their effective defaults and each implementation's
    declared capabilities."""
    from attnzoo.docs import layer_arguments_cell

    overview = [("VARIANT", "FAMILY", "YEAR", "ARXIV", "LAYOUT", "IMPLEMENTATIONS")]
    overview += [(v.name, v.family, str(v.paper.year), v.paper.arxiv, str(v.layout), ", ".join(v.implementations))
                 for v in found]
    blocks = [_table(overview)]
    for v in found:
        impls = _table([(f"    {impl.name}", impl.capabilities.describe(), impl.description)
                        for impl in v.implementations.values()])
        layer = (f"    layer: attnzoo.create({v.name!r}, {layer_arguments_cell(v)})\n" if v.layer is not None
                 else "    layer: none\n")
        blocks.append(f"{v.name} — {v.paper.title} ({v.paper.year}, arXiv:{v.paper.arxiv})\n"
                      f"    {v.summary}\n{layer}{impls}")
    return "\n\n".join(blocks)


def _list(args: argparse.Namespace) -> int:
    from attnzoo.docs import describe_variant, variants_markdown

    if args.name is not None:
        try:
            variant = get_variant(args.name)
        except KeyError as error:
            raise SystemExit(f"attnzoo list: {error.args[0]}") from None
        print(describe_variant(variant))
        return 0
    found = variants(args.family)
    print(variants_markdown(found) if args.markdown else describe_variants(found))
    return 0


def known_impls(families_: Sequence[str], subset: str, device: str) -> set[str]:
    """Every implementation name ``--impl`` may give: the registry's and those of the suites' cases (the dense
    baseline and the peer libraries)."""
    registry = {name for variant in variants() for name in variant.implementations}
    from attnzoo.bench.suites import suite_cases

    return registry | {case.impl for family in families_ for case in suite_cases(family, subset, None, device)}


def check_bench_arguments(impls: Sequence[str] | None, families_: Sequence[str], subset: str, device: str) -> None:
    """``ValueError`` for a ``--device`` the suites of ``families_`` cannot run on, or naming every ``--impl``
    that neither those suites nor a registry variant has."""
    known = known_impls(families_, subset, device)
    unknown = [impl for impl in impls or () if impl not in known]
    if unknown:
        raise ValueError(f"--impl {', '.join(map(repr, unknown))}: unknown implementation; expected one of "
                         f"{', '.join(sorted(known))}")


def open_cache(args: argparse.Namespace):  # -> RowCache | None
    """The row cache of ``bench``/``compare`` (``--cache DIR``, else ``$ATTNZOO_CACHE`` or
    ``~/.cache/attnzoo/bench``; ``--fresh`` measures every row again), created and checked writable now;
    ``None`` with ``--no-cache``."""
    from attnzoo.bench.cache import RowCache

    if args.no_cache:
        if args.cache is not None or args.fresh:
            raise ValueError(f"--no-cache and {'--cache' if args.cache is not None else '--fresh'}: give one of them")
        return None
    return RowCache(args.cache, fresh=args.fresh)


def _run(family: str, subset: str, quick: bool, impls: Sequence[str] | None, progress: bool, device: str,
         cache=None) -> dict:
    from attnzoo.bench import Settings, run_cases
    from attnzoo.bench.suites import suite_cases

    settings = Settings(target_s=0.2, max_repeats=10) if quick else Settings()
    return run_cases(suite_cases(family, subset, impls, device), settings, progress=progress, cache=cache)


def _bench_op(args: argparse.Namespace) -> int:
    """``attnzoo bench --op NAME``: one variant on the flags' shape and options, with both SDPA baselines."""
    from attnzoo.bench import Settings, run_cases, save
    from attnzoo.bench.op import OpRequest, add_speedups, format_table, op_cases, parse_opt

    with reporting(f"attnzoo bench --op {args.op}"):
        if args.family is not None:
            raise ValueError(f"--family {args.family!r} and --op {args.op!r}: give one of them")
        out = writable_folder(args.out, "--out") if args.out is not None else None
        cache = open_cache(args)
        opts = dict(parse_opt(text) for text in args.opt or ())
        request = OpRequest(args.op, batch=args.batch, heads=args.heads, length=args.length,
                            grid=tuple(args.grid) if args.grid else None, head_dim=args.head_dim, opts=opts,
                            backward=args.backward, impls=args.impl, device=args.device,
                            dtype=getattr(torch, args.dtype), compile=args.compile)
        cases, case, options = op_cases(request)
    settings = Settings(target_s=0.2, max_repeats=10) if args.quick else Settings()
    doc = run_cases(cases, settings, progress=not args.no_progress, cache=cache)
    add_speedups(doc)
    doc["command"] = args.command
    table = format_table(doc, args.backward)
    shape = ", ".join(f"{k}={v}" for k, v in case.items())
    print(f"{args.op} on {args.device} ({shape}); options {options}\n\n{table}")
    if out is not None:
        stem = f"op_{args.op}_{torch.device(args.device).type}"
        save(doc, out / f"{stem}.json")
        (out / f"{stem}.md").write_text(f"# attnzoo bench --op {args.op}\n\n`{args.command}`\n\n{shape}; "
                                        f"options {options}\n\n{table}\n")
        print(f"wrote {out / f'{stem}.json'} and {out / f'{stem}.md'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from attnzoo.bench import save
    from attnzoo.bench.report import speed_sections, write_report

    if args.op is not None:
        return _bench_op(args)
    given = [flag for flag, value in (("--batch", args.batch), ("--heads", args.heads), ("--length", args.length),
                                      ("--grid", args.grid), ("--head-dim", args.head_dim), ("--opt", args.opt),
                                      ("--backward", args.backward or None), ("--compile", args.compile or None),
                                      ("--dtype", None if args.dtype == "float32" else args.dtype))
             if value is not None]
    if given:
        raise SystemExit(f"attnzoo bench: {', '.join(given)} need --op NAME (one variant on your own shape)")
    args.family = args.family or "local"
    args.out = args.out or "benchmarks/results"
    subset = "quick" if args.quick else "full"
    with reporting("attnzoo bench"):
        out = writable_folder(args.out, "--out")
        cache = open_cache(args)
        check_bench_arguments(args.impl, [args.family], subset, args.device)
    doc = _run(args.family, subset, args.quick, args.impl, not args.no_progress, args.device, cache)
    device = torch.device(args.device).type
    stem = f"{args.family}_{device}" + ("_quick" if args.quick else "")
    save(doc, out / f"{stem}.json")
    sections = speed_sections(doc, out, stem, leaderboard=False)
    report = write_report(out / f"{stem}.md", f"Benchmark: {args.family} family, {device}", sections, args.command)
    print(f"wrote {out / f'{stem}.json'}, {report} and plots")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from attnzoo.bench import Settings
    from attnzoo.compare.cache import QualityCache
    from attnzoo.compare.jobs import QualitySettings
    from attnzoo.compare.plan import parse_budget
    from attnzoo.compare.run import CompareOptions, compare

    with reporting("attnzoo compare"):
        if args.full and args.budget is not None:
            raise ValueError(f"--full and --budget {args.budget}: give one of them (--full has no budget)")
        out = writable_folder(args.out, "--out")
        cache = open_cache(args)
        tasks = () if args.no_quality else _names(args.tasks, "--tasks") or QualitySettings.tasks
        defaults = QualitySettings()
        quality = dataclasses.replace(defaults, tasks=tasks, mqar_steps=args.mqar_steps, mqar_lr=args.mqar_lr,
                                      mqar=dataclasses.replace(defaults.mqar, batch_size=args.mqar_batch_size),
                                      quick=args.quick, device=args.device)
        options = CompareOptions(
            out=out, budget_s=None if args.full else parse_budget(args.budget or "15m"),
            families=_names(args.families, "--families"), quality=quality, mixers=_names(args.mixers, "--mixers"),
            impls=tuple(args.impl) if args.impl else None, speed=not args.no_speed, workers=args.workers,
            threads_per_job=args.threads_per_job, engine=args.engine, cache=cache,
            quality_cache=None if cache is None else QualityCache(cache.folder, fresh=cache.fresh),
            cost_path=None if cache is None else cache.folder / "compare_costs.json",
            bench_settings=Settings(target_s=0.2, max_repeats=10) if args.quick else Settings(),
            device=args.device, progress=not args.no_progress, plan_only=args.plan,
            write_seed=_seed_path(args.write_seed), command=args.command)
        report = compare(options)
    if report is not None:
        print(f"wrote {report}")
    return 0


def _seed_path(text: str | None) -> Path | None:
    """``--write-seed FILE``, its folder checked writable now (the file is written after the whole run)."""
    if text is None:
        return None
    path = Path(text)
    writable_folder(str(path.parent), "--write-seed")
    return path


def _names(text: str | None, flag: str) -> tuple[str, ...] | None:
    """A comma-separated flag's names (``None`` when not given); ``ValueError`` when given but empty."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError(f"{flag} {text!r}: expected comma-separated names")
    return names


def _eval(args: argparse.Namespace) -> int:
    from attnzoo.tasks import MODEL_TASKS, TASKS
    from attnzoo.tasks.harness import evaluate_mixers, markdown, score_metrics
    from attnzoo.train.distributed import is_main_process

    with reporting(f"attnzoo eval {args.task}"):
        out = writable_folder(args.out, "--out")
        task_class, names = _eval_task(args, TASKS[args.task], MODEL_TASKS.get(args.task))
        task = task_class(**{f.name: getattr(args, f.name) for f in task_fields(task_class)})
        mixers = [name.strip() for name in names.split(",") if name.strip()]
        train_config = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=min(100, args.steps // 10),
                                   seed=args.seed, progress=not args.no_progress, device=args.device,
                                   ckpt_interval=args.ckpt_interval)
        rows = evaluate_mixers(task, mixers, train_config, out, progress=not args.no_progress,
                               command=args.command, resume=args.resume)
    if is_main_process():  # under torchrun only rank 0 wrote the report, and only it prints
        print(markdown(rows, score_metrics(rows), getattr(task, "row_label", "mixer")))
        print(f"wrote {out / f'{task.name}.json'} and {out / f'{task.name}.md'}")
    return 0


def _eval_task(args: argparse.Namespace, task_class: type, models_task: type | None) -> tuple[type, str]:
    """The task class and comma-separated names ``attnzoo eval`` runs: with ``--models`` (a task with a
    ``models_task``, :data:`attnzoo.tasks.MODEL_TASKS`), that task over the models; then ``--mixers`` and the
    settings of the mixer task's model that the models task does not have must be left at their defaults
    (``ValueError`` naming them)."""
    models = getattr(args, "models", None)
    if models is None or models_task is None:
        return task_class, args.mixers
    kept = {f.name for f in task_fields(models_task)}
    changed = [f"--{f.name.replace('_', '-')}" for f in task_fields(task_class)
               if f.name not in kept and getattr(args, f.name) != f.default]
    if args.mixers != ",".join(task_class.default_mixers):
        changed.insert(0, "--mixers")
    if changed:
        raise ValueError(f"--models {models!r} with {', '.join(changed)}: those set the ViT of --mixers; the models "
                         "are built with their own defaults (pass no model settings, or run without --models)")
    return models_task, models


def task_fields(task_class: type) -> list[dataclasses.Field]:
    """The settings of a task class that the command line exposes (its public dataclass fields)."""
    return [f for f in dataclasses.fields(task_class) if not f.name.startswith("_")]


def _add_eval_parsers(sub: argparse._SubParsersAction) -> None:
    from attnzoo.tasks import MODEL_TASKS, TASKS

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
        models_task = MODEL_TASKS.get(name)
        if models_task is not None:
            command.add_argument("--models", default=None,
                                 help="comma-separated registered models (attnzoo.list_models()) to train instead of "
                                      f"the ViT's mixers; writes {models_task.name}.json/.md "
                                      f"(e.g. {','.join(models_task.default_mixers)})")
        command.add_argument("--out", default="reports/eval", help="output folder (default: reports/eval)")
        command.add_argument("--resume", action="store_true",
                             help="continue each mixer's run from its newest checkpoint in OUT/runs (exact)")
        command.add_argument("--ckpt-interval", type=int, default=500,
                             help="steps between checkpoints (default: 500; a final one is always written)")
        command.add_argument("--no-progress", action="store_true", help="no progress bars")
        _add_device(command, "device to train and score on")
        command.set_defaults(handler=_eval)
    _add_kv_parser(tasks)


def _add_kv_parser(tasks: argparse._SubParsersAction) -> None:
    command = tasks.add_parser("kv", help="KV-cache policies on SmolLM2-135M: perplexity on held-out Austen against "
                                          "compression (attnzoo.kv.evaluation)")
    command.add_argument("--quick", action="store_true",
                         help="context 512, two windows, chunk scoring, tau 0.95, needle at 3 depths, 3 timing repeats")
    command.add_argument("--contexts", metavar="N,N", default=None, help="contexts (default 512,1024,2048)")
    command.add_argument("--windows", type=int, default=None, help="windows per context (default 3)")
    command.add_argument("--taus", metavar="T,T", default=None, help="ZipVL taus (default 0.9,0.95,0.99)")
    command.add_argument("--modes", metavar="M,M", default=None, help="chunk and/or decode (default both)")
    command.add_argument("--needle", action=argparse.BooleanOptionalAction, default=True,
                         help="needle-in-a-haystack retrieval at every setting (default: on)")
    command.add_argument("--timing", action=argparse.BooleanOptionalAction, default=True,
                         help="decode tokens/s and peak memory at every setting (default: on)")
    command.add_argument("--out", default="reports/kv", help="output folder (default: reports/kv)")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(handler=_eval_kv)


def _eval_kv(args: argparse.Namespace) -> int:
    from attnzoo.kv.evaluation import KVEvalConfig, run_kv_eval, write

    options: dict = {}
    try:
        if args.contexts:
            try:
                options["contexts"] = tuple(int(c) for c in args.contexts.split(","))
            except ValueError:
                raise ValueError(f"--contexts {args.contexts!r}: expected comma-separated integers") from None
        if args.modes:
            options["modes"] = tuple(m.strip() for m in args.modes.split(","))
        if args.taus:
            try:
                options["taus"] = tuple(float(t) for t in args.taus.split(","))
            except ValueError:
                raise ValueError(f"--taus {args.taus!r}: expected comma-separated reals in (0, 1]") from None
        if args.windows is not None:
            options["windows"] = args.windows
        options.update(needle=args.needle, timing=args.timing)
        config = dataclasses.replace(KVEvalConfig.quick() if args.quick else KVEvalConfig(), **options)
        flags = [f"--{name} {getattr(args, name)}" for name in ("contexts", "windows", "modes", "taus")
                 if getattr(args, name) is not None]
        flags += [f"--no-{name}" for name in ("needle", "timing") if not getattr(args, name)]
        command = " ".join(["attnzoo eval kv", *(["--quick"] if args.quick else []), *flags])
        report = run_kv_eval(config, progress=not args.no_progress, command=command)
    except (ModuleNotFoundError, ValueError) as error:
        print(f"attnzoo eval kv: {error}", file=sys.stderr)
        return 2
    for path in write(report, args.out):
        print(path)
    return 0


def _add_op_arguments(command: argparse.ArgumentParser) -> None:
    """``bench --op NAME`` and its shape and option flags (unset: the variant's test-spec benchmark case)."""
    group = command.add_argument_group(
        "one variant on your own shape (--op)",
        "e.g. attnzoo bench --op sliding_window_attention --batch 2 --heads 8 --length 3000 --head-dim 48 "
        "--opt window=128 --backward; unset flags keep the variant's benchmark case")
    group.add_argument("--op", metavar="NAME", help="a registered variant (attnzoo list)")
    group.add_argument("--batch", type=int, help="batch size")
    group.add_argument("--heads", type=int, help="heads (ops with a heads axis)")
    group.add_argument("--length", type=int, help="tokens of a sequence op")
    group.add_argument("--grid", type=int, nargs="+", metavar="N", help="token grid of a 2-D/3-D op, e.g. 64 64")
    group.add_argument("--head-dim", type=int, help="head dim (channels for ops without heads)")
    group.add_argument("--opt", action="append", metavar="KEY=VALUE",
                       help="an option of the op or its test case (repeatable; value by ast.literal_eval), "
                            "e.g. --opt window=128 --opt is_causal=True")
    group.add_argument("--backward", action="store_true", help="also time forward + backward")
    group.add_argument("--dtype", choices=("float32", "bfloat16", "float16", "float64"), default="float32",
                       help="input dtype (default float32; on CPU bf16/fp16 matmuls are much slower, see README)")
    group.add_argument("--compile", action="store_true",
                       help="also time each implementation under torch.compile beside eager")


def _add_device(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--device", type=device_argument, default=DEFAULT_DEVICE,
                         help=f"{what}: cpu or cuda[:N] (default: {DEFAULT_DEVICE})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnzoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command_name", required=True)
    listing = sub.add_parser("list", help="every registered variant with its implementations and capabilities")
    listing.add_argument("name", nargs="?", metavar="NAME",
                         help="one variant in full: the layer's arguments and defaults, the op, implementations")
    listing.add_argument("--family", choices=families(), help="only this family")
    listing.add_argument("--markdown", action="store_true", help="the README's variants table (markdown)")
    listing.set_defaults(handler=_list)
    for name, handler, out, help_text in (
            ("bench", _bench, "benchmarks/results", "speed and memory benchmark of a family (JSON, PNG, markdown)"),
            ("compare", _compare, "reports/compare", "comparison report (report.md + plots)")):
        command = sub.add_parser(name, help=help_text)
        if name == "bench":
            command.add_argument("--family", default=None, help="family to benchmark (default: local)")
            _add_op_arguments(command)
        command.add_argument("--quick", action="store_true", help="small subset, short timing (a minute or two)")
        command.add_argument("--out", default=None if name == "bench" else out,
                             help=f"output folder (default: {out}; with --op: print only)")
        command.add_argument("--impl", action="append", metavar="NAME",
                             help="only this implementation (repeatable; the dense baseline is always run)")
        command.add_argument("--no-progress", action="store_true", help="no progress bar")
        command.add_argument("--cache", metavar="DIR", default=None,
                             help="folder of measured rows, reused when everything they depend on matches "
                                  "(default: $ATTNZOO_CACHE or ~/.cache/attnzoo/bench)")
        command.add_argument("--fresh", action="store_true", help="measure every row again (and update the cache)")
        command.add_argument("--no-cache", action="store_true", help="neither read nor write the row cache")
        _add_device(command, "device to measure (and, for compare, train) on")
        if name == "compare":
            _add_compare_arguments(command)
        command.set_defaults(handler=handler)
    _add_eval_parsers(sub)
    _add_leaderboard_parser(sub)
    _add_quant_parser(sub)
    _add_inspect_parser(sub)
    _add_demo_parser(sub)
    return parser


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    from attnzoo.systems import DEMOS, add_common_arguments, demo_module

    command = sub.add_parser("demo", help="a paper's system around attention, end to end at small scale "
                                          "(result.json + result.md + figures; attnzoo.systems)")
    demos = command.add_subparsers(dest="demo", required=True, metavar="NAME")
    for name in sorted(DEMOS):
        module = demo_module(name)
        demo = demos.add_parser(name, help=module.SUMMARY, description=module.SUMMARY)
        add_common_arguments(demo, name)
        module.add_arguments(demo)
        demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from attnzoo.systems import demo_module

    with reporting(f"attnzoo demo {args.demo}"):
        paths = demo_module(args.demo).run(args)
    for path in paths:
        print(path)
    return 0


def _add_leaderboard_parser(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("leaderboard", help="the table and accuracy-vs-throughput plot of the committed "
                                                 "backbone runs (markdown + PNG)")
    command.add_argument("board", choices=("backbones",), help="which leaderboard")
    command.add_argument("--results", default="benchmarks/quality",
                         help="folder holding backbones*/<model>/fashion-mnist-models.json (default: "
                              "benchmarks/quality)")
    command.add_argument("--out", default="benchmarks/quality",
                         help="output folder of backbones.md and the plot (default: benchmarks/quality)")
    command.set_defaults(handler=_leaderboard)


def _leaderboard(args: argparse.Namespace) -> int:
    from attnzoo.compare.leaderboard import write_leaderboard

    with reporting(f"attnzoo leaderboard {args.board}"):
        for path in write_leaderboard(Path(args.out), Path(args.results)):
            print(path)
    return 0


def _add_inspect_parser(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("inspect", help="one attention picture per spatial mixer of a compare / eval "
                                             "fashion-mnist run, on the same test image (attention.png + .json)")
    command.add_argument("run", metavar="RUN_DIR", help="folder of the run (its checkpoints are searched below it)")
    command.add_argument("--image", type=int, default=0, help="Fashion-MNIST test image index (default: 0)")
    command.add_argument("--out", default=None, help="output folder (default: RUN_DIR)")
    command.set_defaults(handler=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    from attnzoo.inspect.figure import write_attention_figure

    if not Path(args.run).is_dir():
        print(f"attnzoo inspect: RUN_DIR {args.run!r} is not a folder", file=sys.stderr)
        return 2
    try:
        path = write_attention_figure(args.run, args.out or args.run, args.image)
    except ValueError as error:
        print(f"attnzoo inspect: {error}", file=sys.stderr)
        return 2
    if path is None:
        print(f"attnzoo inspect: no Fashion-MNIST checkpoint under {args.run!r} (train with `attnzoo compare` or "
              "`attnzoo eval fashion-mnist`)", file=sys.stderr)
        return 2
    print(path)
    return 0


def _add_quant_parser(sub: argparse._SubParsersAction) -> None:
    from attnzoo.quant.evaluation.report import METHODS

    command = sub.add_parser("quant", help="post-training quantization of all-MiniLM-L6-v2: every method at 8/4/3 "
                                           "bits against fp32 (JSON, markdown, plots)")
    command.add_argument("--quick", action="store_true",
                         help="a smoke test: the first block only, 4 bits, a few sentences (about a minute)")
    command.add_argument("--methods", metavar="A,B", default=None,
                         help=f"only these methods (default: all of {','.join(METHODS)})")
    command.add_argument("--bits", metavar="B,B", default=None, help="only these bit widths (of 8,4,3)")
    command.add_argument("--calibration-sentences", type=int, default=None, help="calibration sentences (default 64)")
    command.add_argument("--eval-sentences", type=int, default=None, help="held-out sentences (default 256)")
    command.add_argument("--out", default="reports/quant", help="output folder (default: reports/quant)")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(handler=_quant)


def _quant(args: argparse.Namespace) -> int:
    from attnzoo.quant.evaluation import ModelNotInstalledError, ReportConfig, run_report, write

    options: dict = {}
    if args.methods:
        options["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if args.bits:
        try:
            options["bits"] = tuple(int(b) for b in args.bits.split(","))
        except ValueError:
            print(f"attnzoo quant: --bits {args.bits!r}: expected comma-separated integers of 8,4,3", file=sys.stderr)
            return 2
    for name in ("calibration_sentences", "eval_sentences"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    try:
        config = ReportConfig.quick_config(**options) if args.quick else ReportConfig(**options)
        report = run_report(config, progress=not args.no_progress, command=args.command,
                            on_row=lambda partial: write(partial, args.out, log=lambda _: None))
    except (ModelNotInstalledError, ValueError) as error:
        print(f"attnzoo quant: {error}", file=sys.stderr)
        return 2
    for path in write(report, args.out):
        print(path)
    return 0


def _add_compare_arguments(command: argparse.ArgumentParser) -> None:
    from attnzoo.compare.engine import ENGINES
    from attnzoo.compare.jobs import QUALITY_TASKS

    command.add_argument("--budget", metavar="TIME", default=None,
                         help="wall-time budget (15m, 1h, 90s; default 15m): the plan keeps the jobs that fit, "
                              "every family's representatives first; the report lists what it left out")
    command.add_argument("--full", action="store_true", help="run every job of the chosen families (no budget)")
    command.add_argument("--families", metavar="A,B", help="only these families (default: every family)")
    command.add_argument("--tasks", metavar="A,B",
                         help=f"quality tasks (default: {','.join(QUALITY_TASKS)}; MQAR and Austen train the causal "
                              "sequence mixers, Fashion-MNIST the spatial ones)")
    command.add_argument("--mixers", metavar="A,B", help="only these mixers in the quality rows (softmax always)")
    command.add_argument("--workers", type=int, default=None,
                         help="training processes (default: one per core at --threads-per-job)")
    command.add_argument("--threads-per-job", type=int, default=None, help="threads of each training job (default 1)")
    command.add_argument("--engine", choices=ENGINES, default="local",
                         help="where training jobs run: local processes, or a Slurm cluster through submitit "
                              "(extra attnzoo[cluster])")
    command.add_argument("--plan", action="store_true", help="print and write the plan (plan.json), run nothing")
    command.add_argument("--write-seed", metavar="FILE", default=None,
                         help="after the run, write this machine's job costs as a seed cost book (maintainers)")
    command.add_argument("--mqar-steps", type=int, default=400,
                         help="training steps per MQAR run (default: 400)")
    command.add_argument("--mqar-lr", type=float, default=1e-2,
                         help="peak learning rate of the MQAR runs (default: 1e-2, the top of Zoology's sweep: "
                              "softmax reaches 99.9%% at 256 tokens in 400 steps of 32)")
    command.add_argument("--mqar-batch-size", type=int, default=32,
                         help="examples per MQAR training step (default: 32)")
    command.add_argument("--no-quality", action="store_true", help="speed and memory only")
    command.add_argument("--no-speed", action="store_true", help="quality only")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.command = "attnzoo " + " ".join(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
