"""``attnzoo eval mqar`` and the MQAR task on the shared harness, on a tiny setting (a few steps, seconds)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from attnzoo import cli
from attnzoo.tasks.harness import evaluate_mixers
from attnzoo.tasks.mqar_eval import DEFAULT_MIXERS, MQARTask
from attnzoo.train import TrainConfig, read_jsonl

TINY = MQARTask(vocab_size=64, seq_len=16, num_kv_pairs=2, train_examples=200, test_examples=32, d_model=16,
                batch_size=8)


def _train_config(steps: int = 3) -> TrainConfig:
    return TrainConfig(steps=steps, lr=3e-3, warmup_steps=1, progress=False, device="cpu")


def _run(out: Path, mixers: tuple[str, ...] = DEFAULT_MIXERS, task: MQARTask = TINY) -> list[dict]:
    return evaluate_mixers(task, mixers, _train_config(), out, progress=False)


def test_rows_have_every_field_and_files_are_written(tmp_path: Path) -> None:
    rows = _run(tmp_path)
    assert [row["mixer"] for row in rows] == list(DEFAULT_MIXERS)
    for row in rows:
        assert row["steps"] == 3 and row["params"] > 0 and row["train_time_s"] > 0
        assert row["train_items_per_s"] == pytest.approx(3 * 8 * 16 / row["train_time_s"])
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert (tmp_path / "runs" / "mqar" / row["mixer"] / "metrics.jsonl").exists()
    doc = json.loads((tmp_path / "mqar.json").read_text())
    assert doc["task"] == "mqar" and [r["mixer"] for r in doc["rows"]] == list(DEFAULT_MIXERS)
    assert doc["settings"]["seq_len"] == 16 and "_data" not in doc["settings"]
    table = (tmp_path / "mqar.md").read_text()
    assert "| mixer |" in table and all(f"| {mixer} |" in table for mixer in DEFAULT_MIXERS)


def test_seeded_runs_repeat_exactly(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", ("softmax",))[0]
    second = _run(tmp_path / "b", ("softmax",))[0]
    assert first["test_accuracy"] == second["test_accuracy"]
    losses = [[r["loss"] for r in read_jsonl(tmp_path / d / "runs" / "mqar" / "softmax" / "metrics.jsonl")]
              for d in "ab"]
    assert losses[0] == losses[1]


def test_mixer_defaults_and_models() -> None:
    task = MQARTask(seq_len=64)
    assert task.mixer_options("sliding_window_attention") == {"is_causal": True, "num_heads": 1, "window": 17}
    assert task.mixer_options("neighborhood_attention_1d")["kernel_size"] == 17
    assert task.mixer_options("lightning_attention") == {}
    conv = TINY.build_model("base_conv", {})
    assert conv.position_embedding is None and conv.blocks[1].mixer.kernel.shape[-1] == 16  # l_max = seq_len
    softmax = TINY.build_model("softmax", {"num_heads": 1})
    assert softmax.position_embedding.num_embeddings == 16
    assert type(softmax.blocks[0].mixer).__name__ == "BaseConv"  # short_conv stem
    pure = MQARTask(vocab_size=64, seq_len=16, num_kv_pairs=2, short_conv=0).build_model("softmax", {})
    assert all(type(b.mixer).__name__ == "SoftmaxAttention" or "Softmax" in type(b.mixer).__name__
               for b in pure.blocks)


def test_loss_uses_only_query_positions() -> None:
    TINY.prepare()
    model = TINY.build_model("softmax", {})
    inputs, labels = TINY.batch(torch.Generator().manual_seed(0))
    full = torch.nn.functional.cross_entropy(model(inputs).flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(TINY.loss(model, (inputs, labels)), full)


@pytest.mark.parametrize(("mixer", "match"), [("no_such_mixer", "unknown mixer 'no_such_mixer'"),
                                              ("neighborhood_attention_2d", "layout"),
                                              ("window_attention_2d", "layout")])
def test_unusable_mixer_fails_before_training(tmp_path: Path, mixer: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _run(tmp_path, ("softmax", mixer))
    assert not (tmp_path / "runs").exists()


def test_duplicate_mixers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="twice"):
        _run(tmp_path, ("softmax", "softmax"))


def test_cli_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    argv = ["eval", "mqar", "--mixers", "softmax,base_conv", "--seq-len", "16", "--num-kv-pairs", "2",
            "--vocab-size", "64", "--steps", "2", "--d-model", "16", "--batch-size", "8", "--train-examples", "100",
            "--test-examples", "16", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    assert "| softmax |" in capsys.readouterr().out
    doc = json.loads((out / "mqar.json").read_text())
    assert [(r["mixer"], r["steps"]) for r in doc["rows"]] == [("softmax", 2), ("base_conv", 2)]
    assert doc["settings"]["seq_len"] == 16
    assert (out / "mqar.md").read_text().startswith("<!-- command: attnzoo eval mqar")


def test_cli_unknown_mixer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown mixer 'nope'"):
        cli.main(["eval", "mqar", "--mixers", "softmax,nope", "--seq-len", "16", "--num-kv-pairs", "2",
                  "--vocab-size", "64", "--out", str(tmp_path), "--no-progress"])


def test_resume_continues_an_interrupted_evaluation_exactly(tmp_path: Path) -> None:
    whole = evaluate_mixers(TINY, ("softmax",), _train_config(6), tmp_path / "whole", progress=False)[0]
    cut = tmp_path / "cut"
    from attnzoo.train import train as engine

    TINY.prepare()
    torch.manual_seed(0)
    model = TINY.build_model("softmax", TINY.mixer_options("softmax"))
    engine(model, TINY.batch, TINY.loss, replace(_train_config(6), out_dir=str(cut / "runs" / "mqar" / "softmax")),
           max_steps_this_run=3)  # stops after 3 of 6 steps with a checkpoint, as an interrupted run would
    resumed = evaluate_mixers(TINY, ("softmax",), _train_config(6), cut, progress=False, resume=True)[0]
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    last = [[(r["step"], r["loss"]) for r in read_jsonl(d / "runs" / "mqar" / "softmax" / "metrics.jsonl")][-1]
            for d in (tmp_path / "whole", cut)]
    assert last[0] == last[1] and last[0][0] == 6  # the same loss at the same last step, bit for bit
