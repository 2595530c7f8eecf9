"""Hostile-input reliability of the training engine: damaged checkpoints and logs, divergence, bad settings,
a full disk. Tiny float32 MLP runs of a few steps (milliseconds each)."""

from __future__ import annotations

import errno
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import attnzoo.train.checkpoint as ckpt_mod
from attnzoo.train import (
    CheckpointError,
    DiskFullError,
    NonFiniteLossError,
    latest_checkpoint,
    load_checkpoint,
    read_jsonl,
    train,
)

from test_train import DropoutMLP, assert_bit_identical, config, interrupted_run, mse, noisy_batches, weights


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "truncated weights": (lambda d: _truncate(d / "ckpt-00000006.safetensors"), "ckpt-00000006.safetensors"),
    "truncated state": (lambda d: _truncate(d / "ckpt-00000006.state.pt"), "ckpt-00000006.state.pt"),
    "empty pointer": (lambda d: (d / "latest.json").write_text(""), "latest.json"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_resume_skips_damaged_files_for_the_newest_that_verifies(tmp_path: Path, damage: str) -> None:
    full = DropoutMLP()
    train(full, noisy_batches, mse, config(tmp_path / "full"))
    out = tmp_path / "run"
    interrupted_run(out)
    ckpt_dir = out / "checkpoints"
    spoil, bad_file = DAMAGE[damage]
    spoil(ckpt_dir)
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 8, "lo')  # a torn last record
    orphan = ckpt_dir / ".ckpt-00000009.safetensors.abc123.tmp"
    orphan.write_bytes(b"half a file")

    resumed = DropoutMLP(seed=5)
    with pytest.warns(UserWarning) as caught:
        train(resumed, noisy_batches, mse, config(out, ckpt_interval=3), resume=True)
    messages = " | ".join(str(w.message) for w in caught)
    assert bad_file in messages and "metrics.jsonl" in messages and orphan.name in messages
    assert_bit_identical(weights(full), weights(resumed))
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == list(range(1, 13))
    assert not orphan.exists() and latest_checkpoint(ckpt_dir)["step"] == 12


def test_no_checkpoint_verifies_names_every_file(tmp_path: Path) -> None:
    interrupted_run(tmp_path)
    ckpt_dir = tmp_path / "checkpoints"
    for weights_file in ckpt_dir.glob("*.safetensors"):
        _truncate(weights_file)
    with pytest.raises(CheckpointError, match="ckpt-00000006.safetensors") as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_checkpoint(ckpt_dir, DropoutMLP())
    assert "ckpt-00000003.safetensors" in str(info.value) and str(ckpt_dir) in str(info.value)


def test_metrics_with_a_bad_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not JSON"):
        read_jsonl(path)


def test_diverging_run_stops_before_checkpointing_nan(tmp_path: Path) -> None:
    calls = {"n": 0}

    def exploding(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        return mse(model, batch) * (math.inf if calls["n"] == 5 else 1.0)

    model = DropoutMLP()
    with pytest.raises(NonFiniteLossError, match=r"step 5: loss inf"):
        train(model, noisy_batches, exploding, config(tmp_path, ckpt_interval=2))
    assert latest_checkpoint(tmp_path / "checkpoints")["step"] == 4
    assert not list((tmp_path / "checkpoints").glob("ckpt-0000000[56]*"))
    assert all(torch.isfinite(w).all() for w in weights(model).values())
    reloaded = DropoutMLP(seed=1)
    load_checkpoint(tmp_path / "checkpoints", reloaded)
    assert all(torch.isfinite(w).all() for w in weights(reloaded).values())


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("lr", math.inf, "a finite number > 0"), ("lr", math.nan, "a finite number > 0"),
    ("lr", 0.0, "a finite number > 0"),
    ("steps", 0, "an integer >= 1"), ("grad_clip", -1.0, "None or a finite number >= 0"),
    ("warmup_steps", 13, r"an integer in \[0, steps=12\]"), ("ckpt_interval", -1, "an integer >= 0"),
])
def test_bad_training_settings_are_refused_up_front(setting: str, value: float, expected: str) -> None:
    with pytest.raises(ValueError, match=rf"TrainConfig {setting}={value!r}: expected {expected}"):
        config(None, **{setting: value})


def test_full_disk_during_a_checkpoint_write_keeps_the_previous_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = ckpt_mod.save_model
    calls = {"n": 0}

    def filling_save(model: nn.Module, path: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(model, path)

    monkeypatch.setattr(ckpt_mod, "save_model", filling_save)
    with pytest.raises(DiskFullError, match=r"disk is full.*ckpt-00000006\.safetensors") as info:
        train(DropoutMLP(), noisy_batches, mse, config(tmp_path, ckpt_interval=3))
    assert info.value.errno == errno.ENOSPC
    ckpt_dir = tmp_path / "checkpoints"
    assert latest_checkpoint(ckpt_dir)["step"] == 3 and not list(ckpt_dir.glob(".*.tmp"))
    assert load_checkpoint(ckpt_dir, DropoutMLP(seed=2))["step"] == 3

