"""Hostile-input reliability of the quality harness (``attnzoo eval``) and its data: changed settings on resume,
throughput after a resume, bad task settings, a diverging budget. Tiny MQAR runs (seconds)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from attnzoo import cli
from attnzoo.tasks import AustenLMTask, MQARTask, PixelMNISTTask
from attnzoo.tasks.harness import evaluate_mixers
from attnzoo.train import train

from test_mqar_eval import TINY, _train_config

TINY_FLAGS = {"--mixers": "softmax", "--seq-len": "16", "--num-kv-pairs": "2", "--vocab-size": "64",
              "--d-model": "16", "--batch-size": "8", "--train-examples": "100", "--test-examples": "16",
              "--steps": "4", "--ckpt-interval": "2", "--lr": "0.003"}


def _eval_argv(out: Path, *extra: str, **changed: str) -> list[str]:
    """``attnzoo eval mqar`` on the tiny setting, flags overridden by ``changed`` (``batch_size="4"``)."""
    flags = {**TINY_FLAGS, **{"--" + name.replace("_", "-"): value for name, value in changed.items()}}
    return ["eval", "mqar", *(item for pair in flags.items() for item in pair), "--out", str(out), "--no-progress",
            *extra]


def test_resume_with_changed_settings_lists_each_change(tmp_path: Path) -> None:
    assert cli.main(_eval_argv(tmp_path)) == 0
    results = (tmp_path / "mqar.json").read_text()
    with pytest.raises(SystemExit) as info:
        cli.main(_eval_argv(tmp_path, "--resume", batch_size="4", train_examples="150", data_seed="3", lr="0.01"))
    message = str(info.value)
    for change in ("batch_size: 8 -> 4", "train_examples: 100 -> 150", "data_seed: 0 -> 3", "lr: 0.003 -> 0.01"):
        assert change in message
    assert "seq_len" not in message  # only what changed is listed
    assert (tmp_path / "mqar.json").read_text() == results  # the finished run's results are left alone
    assert cli.main(_eval_argv(tmp_path, "--resume")) == 0  # the same settings still resume


def test_throughput_after_a_resume_counts_only_this_calls_steps(tmp_path: Path) -> None:
    TINY.prepare()
    torch.manual_seed(0)
    model = TINY.build_model("softmax", TINY.mixer_options("softmax"))
    train(model, TINY.batch, TINY.loss, replace(_train_config(6), out_dir=str(tmp_path / "runs/mqar/softmax")),
          max_steps_this_run=4)
    row = evaluate_mixers(TINY, ("softmax",), _train_config(6), tmp_path, progress=False, resume=True)[0]
    assert row["steps"] == 6
    assert row["train_items_per_s"] == pytest.approx(2 * TINY.items_per_batch / row["train_time_s"])


@pytest.mark.parametrize(("make", "message"), [
    (lambda: MQARTask(batch_size=0), "MQARTask batch_size=0: expected an integer >= 1"),
    (lambda: MQARTask(train_examples=0), "MQARTask train_examples=0: expected an integer >= 1"),
    (lambda: MQARTask(test_examples=-5), "MQARTask test_examples=-5: expected an integer >= 1"),
    (lambda: replace(TINY, batch_size=-1), "MQARTask batch_size=-1: expected an integer >= 1"),
    (lambda: AustenLMTask(batch_size=0), "AustenLMTask batch_size=0: expected an integer >= 1"),
    (lambda: PixelMNISTTask(test_examples=0), "PixelMNISTTask test_examples=0: expected an integer >= 1"),
    (lambda: PixelMNISTTask(test_examples=10_001).prepare(),
     "PixelMNISTTask test_examples=10001: expected at most 10,000, the Fashion-MNIST test images"),
])
def test_bad_task_settings_are_refused_up_front(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("lr", "inf", "TrainConfig lr=inf: expected a finite number > 0"),
    ("batch_size", "0", "MQARTask batch_size=0: expected an integer >= 1"),
    ("steps", "0", "TrainConfig steps=0: expected an integer >= 1"),
])
def test_cli_refuses_a_diverging_budget_before_training(tmp_path: Path, flag: str, value: str, message: str) -> None:
    with pytest.raises(SystemExit, match=f"attnzoo eval mqar: {message}"):
        cli.main(_eval_argv(tmp_path, **{flag: value}))
    assert not (tmp_path / "runs").exists()


def test_cli_stops_a_diverging_run_with_the_step_and_loss(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"attnzoo eval mqar: training diverged at step \d+: loss (nan|inf)"):
        cli.main(_eval_argv(tmp_path, lr="1e30", steps="6"))
    assert not list((tmp_path / "runs/mqar/softmax/checkpoints").glob("*.safetensors"))
