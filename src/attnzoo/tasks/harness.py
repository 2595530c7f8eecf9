"""Train and score token mixers side by side on one quality task: the engine behind ``attnzoo eval TASK``.

A task (:class:`QualityTask`) says how to build its model around a mixer, draw a training batch, compute the
loss and score a trained model; :func:`evaluate_mixers` does the rest identically for every task and mixer:
seeds the initialisation, trains with the shared engine (:func:`attnzoo.train.train`: AdamW, warm-up + cosine,
clipping, seeded, checkpoints under ``out_dir/runs/<task>/<mixer>/``), times the training, scores, and writes
``out_dir/<task>.json`` plus a markdown table ``out_dir/<task>.md`` (under ``torchrun``, rank 0 only).
``train_time_s`` is the wall time of the engine's call (steps plus the final checkpoint write, not the scoring);
``train_items_per_s`` is the task's training items (tokens or images) per second of that time — a throughput measured
on the same work as the quality, which the comparison plots use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from attnzoo.train import TrainConfig, train
from attnzoo.train.distributed import is_main_process


class QualityTask(Protocol):
    """What :func:`evaluate_mixers` needs of a task (the task classes are dataclasses of their settings)."""

    name: str
    """Short name: the CLI's task argument and the output files' stem."""
    title: str
    """Report heading."""
    metric: str
    """The key of :meth:`score`'s headline number (e.g. ``"test_accuracy"``)."""
    higher_is_better: bool
    items_per_batch: int
    """Training items (tokens, images) per batch, for the throughput column."""
    item_name: str
    """What an item is (``"tokens"``, ``"images"``)."""
    default_mixers: tuple[str, ...]
    default_steps: int
    default_lr: float
    """The command line's defaults for ``--mixers``, ``--steps`` and ``--lr``."""

    def check_mixers(self, options: Mapping[str, Mapping[str, Any]]) -> None:
        """Raise ``ValueError`` naming every mixer (with its layer options) this task's model cannot take."""

    def prepare(self) -> None:
        """Load or generate the data (once per :func:`evaluate_mixers` call)."""

    def build_model(self, mixer: str, mixer_kwargs: Mapping[str, Any]) -> nn.Module:
        """The task's model around ``mixer`` (``mixer_kwargs`` override the task's per-mixer defaults)."""

    def mixer_options(self, mixer: str) -> dict[str, Any]:
        """The task's default keyword arguments for ``mixer``."""

    def batch(self, generator: torch.Generator) -> Any:
        """The next training batch, all randomness from ``generator`` (exact resume)."""

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean training loss of ``batch``."""

    def score(self, model: nn.Module) -> dict[str, float]:
        """Held-out metrics of the trained model, including :attr:`metric`."""

    def settings_markdown(self, train_config: TrainConfig) -> str:
        """A markdown list of the data, model and training settings."""


def require_at_least(task: object, **minimums: int) -> None:
    """Raise ``ValueError`` naming the first setting of ``task`` (``name=minimum``) that is not an int >= minimum."""
    for name, minimum in minimums.items():
        value = getattr(task, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{type(task).__name__} {name}={value!r}: expected an integer >= {minimum}")


def require_available(task: object, name: str, available: int, what: str) -> None:
    """Raise ``ValueError`` if setting ``name`` of ``task`` asks for more than the ``available`` ``what``."""
    value = getattr(task, name)
    if value > available:
        raise ValueError(f"{type(task).__name__} {name}={value!r}: expected at most {available:,}, the {what}")


@contextmanager
def evaluating(model: nn.Module) -> Iterator[torch.device]:
    """Score ``model`` in eval mode without gradients, restoring its mode after; yields its device."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], label: str = "mixer") -> str:
    """The rows as a markdown table: mixer (headed ``label``), parameters, steps, train time and throughput, then
    ``metrics``."""
    header = [label, "params", "steps", "train time (s)", "train items/s", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["mixer"], r["params"], r["steps"], f"{r['train_time_s']:.1f}", f"{r['train_items_per_s']:,.0f}",
                 *(r[m] for m in metrics)]
        lines.append("| " + " | ".join(_format(c) for c in cells) + " |")
    return "\n".join(lines)


def resolve_mixer_options(task: QualityTask, mixers: Sequence[str],
                          mixer_kwargs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Each mixer's layer options (the task's defaults, then ``mixer_kwargs``), checked: ``ValueError`` for no
    mixers, a name given twice, or a mixer (with its options) the task's model cannot take."""
    mixers = list(mixers)
    if not mixers:
        raise ValueError("no mixers given")
    if len(set(mixers)) != len(mixers):
        raise ValueError(f"mixers lists a name twice: {mixers}")
    options = {mixer: {**task.mixer_options(mixer), **(mixer_kwargs or {}).get(mixer, {})} for mixer in mixers}
    task.check_mixers(options)
    return options


def run_settings(task: QualityTask, mixer: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What defines one mixer's run besides the training config: the task, its settings, the mixer and its
    options (stored with the run's checkpoints, so a resume with other settings is refused)."""
    return {"task": task.name, **task_settings(task), "mixer": mixer, "mixer_kwargs": dict(options)}


def evaluate_mixers(task: QualityTask, mixers: Sequence[str], train_config: TrainConfig, out_dir: str | Path, *,
                    mixer_kwargs: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
                    command: str | None = None, resume: bool = False) -> list[dict[str, Any]]:
    """Train one model per mixer on ``task`` and score it; returns one row per mixer.

    Rows hold ``mixer``, ``params``, ``steps``, ``train_time_s``, ``train_items_per_s``, every key of the
    task's :meth:`~QualityTask.score` and the ``mixer_kwargs`` used. ``train_config.seed`` also seeds each
    model's initialisation (a call is reproducible); its ``out_dir`` becomes ``out_dir/runs/<task>/<mixer>``.
    ``mixer_kwargs[name]`` overrides the task's defaults for that mixer. Unknown or unusable mixers raise
    ``ValueError`` before anything trains. ``resume=True`` continues each mixer's run from its newest checkpoint
    under ``out_dir/runs/`` (exactly: weights, optimizer, schedule, RNG and step; a finished run is just scored),
    so an interrupted evaluation picks up where it stopped; ``train_time_s`` and ``train_items_per_s`` then cover
    this call's steps only. Every checkpoint stores the run's settings (:func:`run_settings`); resuming with any
    other task, data, model or training setting raises ``ValueError`` listing each change.
    """
    options = resolve_mixer_options(task, mixers, mixer_kwargs)
    task.prepare()
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    try:
        from tqdm.auto import tqdm  # optional extra [progress]
    except ImportError as error:
        raise ImportError("progress bars need tqdm, an optional extra: pip install 'attnzoo[progress]'") from error
    for mixer in tqdm(options, desc=f"{task.name} mixers", disable=not progress, dynamic_ncols=True):
        rows.append(train_and_score(task, mixer, options[mixer], train_config, out / "runs" / task.name / mixer,
                                    resume=resume))
    if not is_main_process():  # under torchrun every rank trains and scores; rank 0 alone writes the report
        return rows
    out.mkdir(parents=True, exist_ok=True)
    doc = {"task": task.name, "command": command, "metric": task.metric, "higher_is_better": task.higher_is_better,
           "item_name": task.item_name, "settings": task_settings(task), "train_config": train_config.to_dict(),
           "rows": rows}
    (out / f"{task.name}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    write_markdown(out / f"{task.name}.md", task, rows, train_config, command)
    return rows


def train_and_score(task: QualityTask, mixer: str, options: Mapping[str, Any], train_config: TrainConfig,
                    run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """One mixer's run on a prepared ``task``: seed, build, train (checkpoints under ``run_dir``), score; its row
    (see :func:`evaluate_mixers`). The unit of work of ``attnzoo compare``'s quality jobs."""
    torch.manual_seed(train_config.seed)
    model = task.build_model(mixer, options)
    start = time.perf_counter()
    result = train(model, task.batch, task.loss, replace(train_config, out_dir=str(run_dir)), resume=resume,
                   run_settings=run_settings(task, mixer, options))
    train_time = time.perf_counter() - start
    return {"mixer": mixer, "params": sum(p.numel() for p in model.parameters()), "steps": train_config.steps,
            "train_time_s": train_time, "train_items_per_s": result.steps_run * task.items_per_batch / train_time,
            **task.score(model), "mixer_kwargs": dict(options)}


def task_settings(task: QualityTask) -> dict[str, Any]:
    """The task's public dataclass fields (its settings), for the JSON."""
    return {f.name: getattr(task, f.name) for f in fields(task) if not f.name.startswith("_")}  # type: ignore[arg-type]


def score_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metric columns of ``rows``: the keys every row has beyond the bookkeeping ones, in order."""
    skip = {"mixer", "params", "steps", "train_time_s", "train_items_per_s", "mixer_kwargs"}
    return [k for k in rows[0] if k not in skip] if rows else []


def write_markdown(path: Path, task: QualityTask, rows: Sequence[Mapping[str, Any]], train_config: TrainConfig,
                   command: str | None) -> None:
    """The task's report: the results table (``train items`` are the task's :attr:`~QualityTask.item_name`;
    the first column is headed by the task's ``row_label`` if it has one, e.g. ``model``) and its settings."""
    from attnzoo.bench.report import Section, write_report

    table = markdown(rows, score_metrics(rows), getattr(task, "row_label", "mixer"))
    table = table.replace("train items/s", f"train {task.item_name}/s")
    write_report(path, task.title, [Section("Results", table),
                                    Section("Settings", task.settings_markdown(train_config))], command)
