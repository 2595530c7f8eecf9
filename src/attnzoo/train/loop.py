"""The training loop shared by every task: AdamW, warm-up + cosine, clipping, seeding, checkpoints, DDP."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from attnzoo.train.checkpoint import load_checkpoint, remove_orphaned_tmp_files, save_checkpoint
from attnzoo.train.config import TrainConfig
from attnzoo.train.distributed import barrier, init_distributed, mean_across_ranks, shard_batch, to_device
from attnzoo.train.metrics import JsonlLogger
from attnzoo.train.rng import capture_rng, restore_rng, seed_everything
from attnzoo.train.schedule import make_scheduler

BatchFn = Callable[[torch.Generator], Any]
"""Draws the next *global* batch from the seeded data-order generator (a CPU ``torch.Generator``).

Tensors (or tuples/lists/dicts of tensors) with the batch on dim 0; under DDP each rank keeps its
contiguous slice. All randomness of data order must come from the generator for exact resume.
"""
LossFn = Callable[[nn.Module, Any], torch.Tensor]
"""``loss_fn(model, batch) -> scalar``: the mean loss of the batch. ``model`` may be a DDP wrapper, so only
call it (``model(x)``); reach attributes of the bare module through closures instead."""
EvalFn = Callable[[nn.Module], Mapping[str, float]]
"""``eval_fn(model) -> {name: value}`` on the bare model in eval mode, under ``torch.no_grad`` and with
the RNG state forked (so evaluation never changes the training trajectory); rank 0 only."""

RunSettings = Mapping[str, Any]
"""What defines a run beyond :class:`TrainConfig` (task, data and model settings): JSON-able values by name.
Stored with every checkpoint; a resume with different values is refused."""

CKPT_SUBDIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
UNSET = "<unset>"
"""How a setting that one side of a resume does not have is shown in the refusal."""


class NonFiniteLossError(FloatingPointError):
    """Training diverged: the loss or the gradient norm of a step is NaN or infinite (nothing was checkpointed)."""


@dataclass
class TrainResult:
    """What a call to :func:`train` did: the step reached, whether the run is complete, last numbers.

    ``steps_run`` counts the optimizer steps this call ran (``step`` minus the step it resumed from).
    """

    step: int
    finished: bool
    steps_run: int = 0
    loss: float | None = None
    eval: dict[str, float] = field(default_factory=dict)
    metrics_path: Path | None = None
    checkpoint_dir: Path | None = None


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` picks ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; other names pass through."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on tensors with ``ndim >= 2``, none on biases, norm gains and other vectors."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


RESUME_FIELDS = ("steps", "lr", "weight_decay", "betas", "eps", "warmup_steps", "min_lr_ratio", "grad_clip",
                 "seed")
"""Settings that must match between a checkpoint and the run resuming it (they shape the trajectory)."""


def plain_settings(settings: RunSettings) -> dict[str, Any]:
    """``settings`` as JSON containers (tuples become lists, other objects strings): storable, comparable."""
    return json.loads(json.dumps(dict(settings), default=str))


def check_resume_config(saved: TrainConfig, current: TrainConfig, saved_settings: RunSettings | None = None,
                        current_settings: RunSettings | None = None) -> None:
    """Raise ``ValueError`` listing each :data:`RESUME_FIELDS` setting and run setting (task, data, model) that
    ``current`` changes from the checkpointed run, as ``name: old -> new``.

    ``saved_settings=None`` (a checkpoint that recorded none) checks the training settings only.
    """
    old = {f: getattr(saved, f) for f in RESUME_FIELDS}
    new = {f: getattr(current, f) for f in RESUME_FIELDS}
    if saved_settings is not None:
        old.update(plain_settings(saved_settings))
        new.update(plain_settings(current_settings or {}))
    diff = [f"{name}: {old.get(name, UNSET)!r} -> {new.get(name, UNSET)!r}" for name in {**old, **new}
            if old.get(name, UNSET) != new.get(name, UNSET)]
    if diff:
        raise ValueError(f"resume with a different config than the checkpointed run (old -> new): "
                         f"{', '.join(diff)}; rerun with the old settings or use a new out_dir")


def check_finite(step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
    """Raise :class:`NonFiniteLossError` naming ``step`` and the values if the loss or gradient norm is not finite."""
    loss = loss.detach()
    if not bool(torch.isfinite(loss) & torch.isfinite(grad_norm)):
        raise NonFiniteLossError(f"training diverged at step {step}: loss {float(loss):g}, gradient norm "
                                 f"{float(grad_norm):g} (expected finite numbers); nothing of this step was "
                                 "checkpointed; lower the learning rate or check the data")


def train(model: nn.Module, batches: BatchFn, loss_fn: LossFn, config: TrainConfig, *,
          resume: bool = False, max_steps_this_run: int | None = None,
          eval_fn: EvalFn | None = None, run_settings: RunSettings | None = None) -> TrainResult:
    """Train ``model`` in place for ``config.steps`` optimizer steps (or until ``max_steps_this_run``).

    Seeds python/numpy/torch and the data-order generator from ``config.seed``, turns on
    ``torch.use_deterministic_algorithms`` for the run when ``config.deterministic`` (restored after),
    and, when ``WORLD_SIZE > 1`` (``torchrun``), initialises ``torch.distributed`` (gloo on CPU, nccl on
    GPU) and trains with ``DistributedDataParallel``: every rank draws the same global batch and keeps its
    shard, gradients are averaged, only rank 0 writes metrics (``out_dir/metrics.jsonl``) and checkpoints
    (``out_dir/checkpoints/``). With ``resume=True`` the newest checkpoint in ``out_dir`` (if any) restores
    weights, optimizer, scheduler, all RNG states and the step, so the run continues bit-exactly.
    ``max_steps_this_run`` stops early (after writing a checkpoint), e.g. to split a run into jobs.
    ``run_settings`` (task, data, model settings) are stored with every checkpoint; resuming with a different
    training config or different run settings raises ``ValueError`` listing each change. A checkpoint that does
    not verify is skipped for the newest one that does (see :func:`~attnzoo.train.load_checkpoint`); temp files
    of interrupted writes are removed at the start. A NaN or infinite loss or gradient norm raises
    :class:`NonFiniteLossError` before that step's update (so no checkpoint holds a diverged state).
    """
    info = init_distributed()
    device = resolve_device(config.device, info.local_rank)
    out_dir = Path(config.out_dir) if config.out_dir else None
    ckpt_dir = out_dir / CKPT_SUBDIR if out_dir else None
    if resume and out_dir is None:
        raise ValueError("resume=True needs config.out_dir")

    prev_deterministic = torch.are_deterministic_algorithms_enabled()
    prev_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if config.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    logger: JsonlLogger | None = None
    bar: Any = None
    try:
        seed_everything(config.seed)
        data_gen = torch.Generator().manual_seed(config.seed)
        model.to(device)
        optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                                      betas=config.betas, eps=config.eps)
        scheduler = make_scheduler(optimizer, config.steps, config.warmup_steps, config.min_lr_ratio)

        step, elapsed_before = 0, 0.0
        if info.is_main and ckpt_dir is not None and ckpt_dir.is_dir():
            remove_orphaned_tmp_files(ckpt_dir)
        if resume:
            state = load_checkpoint(ckpt_dir, model, map_location=device)
            if state is not None:
                check_resume_config(TrainConfig.from_dict(state["config"]), config, state.get("settings"),
                                    run_settings)
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                restore_rng(state["rng"], data_gen)
                step, elapsed_before = int(state["step"]), float(state.get("elapsed", 0.0))
        resumed_from = step if resume else None
        first_step = step

        net: nn.Module = model
        if info.enabled:
            net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if info.is_main and out_dir is not None:
            logger = JsonlLogger(out_dir / METRICS_FILE, resume_step=resumed_from)

        end = config.steps if max_steps_this_run is None else min(config.steps, step + max_steps_this_run)
        params = [p for p in model.parameters() if p.requires_grad]
        clip = config.grad_clip if config.grad_clip else math.inf
        try:
            from tqdm.auto import tqdm  # optional extra [progress]
        except ImportError as error:
            raise ImportError("progress bars need tqdm, an optional extra: pip install 'attnzoo[progress]'") from error
        bar = tqdm(total=config.steps, initial=step, disable=not (config.progress and info.is_main),
                   desc="train", dynamic_ncols=True)
        t0 = time.perf_counter()
        last_loss: float | None = None
        last_eval: dict[str, float] = {}

        def checkpoint() -> None:
            if info.is_main and ckpt_dir is not None:
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "rng": capture_rng(data_gen), "config": config.to_dict(),
                         **({"settings": plain_settings(run_settings)} if run_settings is not None else {}),
                         "elapsed": elapsed_before + time.perf_counter() - t0}
                save_checkpoint(ckpt_dir, step, model, state, keep=config.keep_checkpoints)
            barrier()

        while step < end:
            batch = to_device(shard_batch(batches(data_gen), info.rank, info.world_size), device)
            net.train()
            lr = optimizer.param_groups[0]["lr"]
            loss = loss_fn(net, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            check_finite(step + 1, loss, grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)

            do_eval = eval_fn is not None and (step == config.steps or
                                               (config.eval_interval and step % config.eval_interval == 0))
            if step % config.log_interval == 0 or step == end or do_eval:
                last_loss = float(mean_across_ranks(loss.detach()))
                record: dict[str, Any] = {"step": step, "loss": last_loss, "lr": lr,
                                          "grad_norm": float(grad_norm),
                                          "time": round(elapsed_before + time.perf_counter() - t0, 4)}
                if do_eval and info.is_main:
                    last_eval = run_eval(model, eval_fn)
                    record.update(last_eval)
                if logger is not None:
                    logger.log(record)
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
            if step == end or (config.ckpt_interval and step % config.ckpt_interval == 0):
                checkpoint()
        return TrainResult(step=step, finished=step >= config.steps, steps_run=step - first_step, loss=last_loss,
                           eval=last_eval,
                           metrics_path=out_dir / METRICS_FILE if logger is not None else None,
                           checkpoint_dir=ckpt_dir)
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
        torch.use_deterministic_algorithms(prev_deterministic, warn_only=prev_warn_only)


def run_eval(model: nn.Module, eval_fn: EvalFn) -> dict[str, float]:
    """Call ``eval_fn`` on ``model`` in eval mode without grad, leaving RNG states and the mode unchanged."""
    was_training = model.training
    rng = capture_rng()
    try:
        with torch.no_grad():
            model.eval()
            return {k: float(v) for k, v in eval_fn(model).items()}
    finally:
        model.train(was_training)
        restore_rng(rng)
