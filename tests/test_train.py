"""The training engine: schedule, clipping, determinism, exact resume, atomic checkpoints, DDP equivalence."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import attnzoo.train.checkpoint as ckpt_mod
from attnzoo.train import (
    TrainConfig,
    latest_checkpoint,
    load_checkpoint,
    read_jsonl,
    save_checkpoint,
    shard_batch,
    train,
    warmup_cosine,
)
from attnzoo.train.example import make_mlp, run as run_example


class DropoutMLP(nn.Module):
    """A small float32 MLP with dropout, so resume must restore the torch RNG as well as the data order."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Dropout(0.2), nn.LayerNorm(32), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def noisy_batches(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x from the data generator; label noise from numpy and python RNGs (exercises their restoration)."""
    x = torch.randn(16, 6, generator=gen)
    noise = torch.from_numpy(np.random.normal(0, 0.05, size=(16, 1)).astype(np.float32)) * random.random()
    return x, x.sum(-1, keepdim=True).tanh() + noise


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def config(tmp: Path | None, **kw: object) -> TrainConfig:
    base = dict(steps=12, lr=1e-2, warmup_steps=3, grad_clip=1.0, seed=7, log_interval=1, progress=False,
                device="cpu", out_dir=str(tmp) if tmp is not None else None)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def strip_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


# --- schedule ---------------------------------------------------------------------------------------------

def test_warmup_cosine_shape() -> None:
    total, warm, floor = 100, 10, 0.1
    m = [warmup_cosine(s, total, warm, floor) for s in range(total)]
    assert m[:warm] == pytest.approx([(s + 1) / warm for s in range(warm)])
    assert m[warm - 1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(m[warm - 1:], m[warm:]))  # non-increasing after the peak
    assert m[-1] == pytest.approx(floor)
    mid = warm + (total - 1 - warm) / 2
    assert warmup_cosine(int(mid), total, warm, floor) == pytest.approx((1 + floor) / 2, abs=0.02)
    assert warmup_cosine(0, 5, 0, 0.0) == 1.0


def test_loop_follows_schedule(tmp_path: Path) -> None:
    cfg = config(tmp_path, steps=20, warmup_steps=4, min_lr_ratio=0.2, lr=0.05)
    train(DropoutMLP(), noisy_batches, mse, cfg)
    recs = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in recs] == list(range(1, 21))
    expected = [0.05 * warmup_cosine(s, 20, 4, 0.2) for s in range(20)]
    assert [r["lr"] for r in recs] == pytest.approx(expected)
    assert set(recs[0]) >= {"step", "loss", "lr", "grad_norm", "time"}


# --- clipping ---------------------------------------------------------------------------------------------

def test_grad_clipping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[float] = []
    orig_step = torch.optim.AdamW.step

    def recording_step(self: torch.optim.Optimizer, *a: object, **kw: object) -> object:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return orig_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)

    def big_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return 1000.0 * mse(model, batch)

    train(DropoutMLP(), noisy_batches, big_loss, config(tmp_path, steps=5, grad_clip=0.5))
    logged = [r["grad_norm"] for r in read_jsonl(tmp_path / "metrics.jsonl")]
    assert len(seen) == 5 and all(n > 0.5 for n in logged)  # the pre-clip norm is logged...
    assert all(n <= 0.5 * (1 + 1e-5) for n in seen)  # ...and the optimizer only sees the clipped gradient
    assert seen == pytest.approx([0.5] * 5, rel=1e-5)


# --- determinism and resume -------------------------------------------------------------------------------

def test_two_identical_runs_are_bit_identical(tmp_path: Path) -> None:
    a, b = DropoutMLP(), DropoutMLP()
    train(a, noisy_batches, mse, config(tmp_path / "a"))
    train(b, noisy_batches, mse, config(tmp_path / "b"))
    assert_bit_identical(weights(a), weights(b))
    assert strip_time(read_jsonl(tmp_path / "a/metrics.jsonl")) == strip_time(read_jsonl(tmp_path / "b/metrics.jsonl"))
    assert not torch.are_deterministic_algorithms_enabled()  # the global flag is restored after the run


def test_resume_after_stop_is_bit_identical(tmp_path: Path) -> None:
    full = DropoutMLP()
    train(full, noisy_batches, mse, config(tmp_path / "full"))

    first = DropoutMLP()
    r1 = train(first, noisy_batches, mse, config(tmp_path / "split"), max_steps_this_run=5)
    assert (r1.step, r1.finished) == (5, False)
    # clobber every RNG and start from different weights: all of it must come back from the checkpoint
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    second = DropoutMLP(seed=99)
    r2 = train(second, noisy_batches, mse, config(tmp_path / "split"), resume=True)
    assert (r2.step, r2.finished) == (12, True)

    assert_bit_identical(weights(full), weights(second))
    assert strip_time(read_jsonl(tmp_path / "full/metrics.jsonl")) == \
        strip_time(read_jsonl(tmp_path / "split/metrics.jsonl"))
    assert_bit_identical(load_file(tmp_path / "split/checkpoints/ckpt-00000012.safetensors"), weights(full))


def interrupted_run(out: Path) -> None:
    """A 12-step run with checkpoints every 3 steps, killed during step 8 (checkpoints 3 and 6 kept)."""
    calls = {"n": 0}

    def crashing(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt("simulated kill at step 8")
        return mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        train(DropoutMLP(), noisy_batches, crashing, config(out, ckpt_interval=3))


def test_resume_after_crash_is_bit_identical(tmp_path: Path) -> None:
    full = DropoutMLP()
    train(full, noisy_batches, mse, config(tmp_path / "full"))
    interrupted_run(tmp_path / "crash")
    assert latest_checkpoint(tmp_path / "crash/checkpoints")["step"] == 6
    assert max(r["step"] for r in read_jsonl(tmp_path / "crash/metrics.jsonl")) == 7

    resumed = DropoutMLP(seed=5)
    train(resumed, noisy_batches, mse, config(tmp_path / "crash", ckpt_interval=3), resume=True)
    assert_bit_identical(weights(full), weights(resumed))
    steps = [r["step"] for r in read_jsonl(tmp_path / "crash/metrics.jsonl")]
    assert steps == list(range(1, 13))  # records past the checkpoint were dropped, not duplicated


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    a, b = DropoutMLP(), DropoutMLP()
    train(a, noisy_batches, mse, config(tmp_path / "a"), resume=True)
    train(b, noisy_batches, mse, config(tmp_path / "b"))
    assert_bit_identical(weights(a), weights(b))


def test_eval_fn_is_logged_and_does_not_perturb_training(tmp_path: Path) -> None:
    plain, evaluated = DropoutMLP(), DropoutMLP()
    train(plain, noisy_batches, mse, config(tmp_path / "plain", log_interval=4))

    def eval_fn(model: nn.Module) -> dict[str, float]:
        assert not model.training and not torch.is_grad_enabled()
        torch.rand(3), np.random.rand(), random.random()  # consuming RNG here must not change training
        x = torch.ones(2, 6)
        return {"val_mse": float(model(x).pow(2).mean())}

    res = train(evaluated, noisy_batches, mse, config(tmp_path / "eval", log_interval=4, eval_interval=6),
                eval_fn=eval_fn)
    assert_bit_identical(weights(plain), weights(evaluated))
    recs = read_jsonl(tmp_path / "eval/metrics.jsonl")
    assert [r["step"] for r in recs] == [4, 6, 8, 12]
    assert [r["step"] for r in recs if "val_mse" in r] == [6, 12]
    assert res.eval["val_mse"] == recs[-1]["val_mse"] and evaluated.training


def test_resume_with_changed_config_is_refused(tmp_path: Path) -> None:
    train(DropoutMLP(), noisy_batches, mse, config(tmp_path), max_steps_this_run=2)
    with pytest.raises(ValueError, match="different config"):
        train(DropoutMLP(), noisy_batches, mse, config(tmp_path, lr=0.5), resume=True)


# --- checkpoints ------------------------------------------------------------------------------------------

def test_checkpoint_files_and_weights_only_state(tmp_path: Path) -> None:
    train(DropoutMLP(), noisy_batches, mse, config(tmp_path, ckpt_interval=4, keep_checkpoints=2))
    d = tmp_path / "checkpoints"
    assert sorted(p.name for p in d.iterdir()) == [
        "ckpt-00000008.safetensors", "ckpt-00000008.state.pt",
        "ckpt-00000012.safetensors", "ckpt-00000012.state.pt", "latest.json"]
    assert json.loads((d / "latest.json").read_text())["step"] == 12
    state = torch.load(d / "ckpt-00000012.state.pt", weights_only=True)
    assert state["step"] == 12 and {"optimizer", "scheduler", "rng", "config"} <= set(state)
    assert TrainConfig.from_dict(state["config"]).steps == 12


@pytest.mark.parametrize("fail_on", [1, 2, 3])  # 1: weights, 2: state, 3: the latest.json pointer
def test_crash_before_replace_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        fail_on: int) -> None:
    model = DropoutMLP()
    save_checkpoint(tmp_path, 1, model, {"marker": torch.tensor([1])})
    w1 = weights(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    calls = {"n": 0}
    real_replace = os.replace

    def dying_replace(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise OSError("simulated crash between temp write and replace")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt_mod.os, "replace", dying_replace)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path, 2, model, {"marker": torch.tensor([2])})
    monkeypatch.undo()

    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was cleaned up
    fresh = DropoutMLP(seed=3)
    state = load_checkpoint(tmp_path, fresh)
    assert state is not None and state["step"] == 1 and int(state["marker"]) == 1
    assert_bit_identical(weights(fresh), w1)


def test_tied_weights_round_trip(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    save_checkpoint(tmp_path, 3, model, {})
    other = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    other[1].weight = other[0].weight
    assert load_checkpoint(tmp_path, other)["step"] == 3
    assert torch.equal(other[0].weight, model[0].weight) and other[1].weight is other[0].weight


# --- data parallel ----------------------------------------------------------------------------------------

def test_shard_batch() -> None:
    x, y = torch.arange(8), torch.arange(8) * 10
    assert torch.equal(shard_batch((x, y), 1, 2)[0], torch.arange(4, 8))
    assert torch.equal(shard_batch({"y": y}, 0, 4)["y"], torch.tensor([0, 10]))
    assert shard_batch(x, 0, 1) is x
    with pytest.raises(ValueError, match="evenly"):
        shard_batch(torch.arange(5), 0, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_example(out: Path, *extra: str) -> None:
    """``torchrun --nproc_per_node=2 -m attnzoo.train.example`` on CPU/gloo (20 steps, global batch 32)."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "attnzoo.train.example", "--out", str(out),
           "--steps", "20", "--batch-size", "32", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_ddp_two_processes_match_single_process(tmp_path: Path) -> None:
    """torchrun, 2 gloo ranks x 16 rows vs 1 process x 32 rows, float64: equal to 1e-12."""
    single = run_example(tmp_path / "single", steps=20, batch_size=32)
    assert single.finished
    _torchrun_example(tmp_path / "ddp")

    a = load_file(tmp_path / "single/final.safetensors")
    b = load_file(tmp_path / "ddp/final.safetensors")
    init = make_mlp().state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == torch.float64
        assert not torch.equal(a[k], init[k])  # it trained
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-12)
    la = read_jsonl(tmp_path / "single/metrics.jsonl")
    lb = read_jsonl(tmp_path / "ddp/metrics.jsonl")  # rank 0 only: one record per logged step
    assert [r["step"] for r in lb] == [r["step"] for r in la]
    assert [r["loss"] for r in lb] == pytest.approx([r["loss"] for r in la], rel=1e-10)
    assert not list((tmp_path / "ddp/checkpoints").glob(".*.tmp"))


def test_ddp_stop_and_resume_matches_single_process(tmp_path: Path) -> None:
    """A 2-rank run stopped after 8 steps and resumed (all ranks load rank 0's checkpoint) ends where an
    uninterrupted single-process run does (float64, 1e-12)."""
    run_example(tmp_path / "single", steps=20, batch_size=32)
    _torchrun_example(tmp_path / "ddp", "--max-steps-this-run", "8")
    assert latest_checkpoint(tmp_path / "ddp/checkpoints")["step"] == 8
    assert not (tmp_path / "ddp/final.safetensors").exists()
    _torchrun_example(tmp_path / "ddp", "--resume")
    a = load_file(tmp_path / "single/final.safetensors")
    b = load_file(tmp_path / "ddp/final.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-12)
    assert [r["step"] for r in read_jsonl(tmp_path / "ddp/metrics.jsonl")] == [5, 8, 10, 15, 20]
