"""The MQAR sweep and the quality sections of ``attnzoo compare`` (tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

from attnzoo import cli
from attnzoo.tasks.mqar_eval import MQARTask
from attnzoo.tasks.sweep import leaderboard, mqar_sweep, quality_sections
from attnzoo.train import TrainConfig

TASK = MQARTask(vocab_size=64, train_examples=100, test_examples=16, d_model=16, batch_size=4)
STEPS = TrainConfig(steps=2, lr=3e-3, warmup_steps=1, progress=False, device="cpu")


def test_sweep_rows_tables_and_plots(tmp_path: Path) -> None:
    rows = mqar_sweep(("softmax", "base_conv"), ((16, 2), (32, 4)), TASK, STEPS, tmp_path / "mqar", progress=False)
    assert [(r["seq_len"], r["num_kv_pairs"], r["mixer"]) for r in rows] == [
        (16, 2, "softmax"), (16, 2, "base_conv"), (32, 4, "softmax"), (32, 4, "base_conv")]
    assert (tmp_path / "mqar" / "L16" / "mqar.md").exists() and (tmp_path / "mqar" / "L32" / "mqar.json").exists()
    assert len(json.loads((tmp_path / "mqar" / "mqar_sweep.json").read_text())["rows"]) == 4
    table = leaderboard(rows)
    assert "acc L=16 (2 kv)" in table and "acc L=32 (4 kv)" in table and table.count("\n") == 3
    sections = quality_sections(rows, tmp_path, TASK, STEPS)
    assert (tmp_path / "mqar_accuracy_vs_length.png").stat().st_size > 1000
    assert (tmp_path / "mqar_quality_vs_throughput.png").stat().st_size > 1000
    assert "(16, 2), (32, 4)" in sections[2].body


def test_leaderboard_sorts_by_accuracy_at_the_longest_length() -> None:
    rows = [{"mixer": m, "seq_len": n, "num_kv_pairs": n // 16, "test_accuracy": a, "train_items_per_s": 1.0,
             "params": 10} for m, n, a in (("a", 64, 0.9), ("a", 128, 0.1), ("b", 64, 0.2), ("b", 128, 0.5))]
    lines = leaderboard(rows).splitlines()
    assert lines[2].startswith("| b |") and lines[3].startswith("| a |")


def test_compare_quality_only_end_to_end(tmp_path: Path) -> None:
    argv = ["compare", "--quick", "--impl", "dense-sdpa", "--mqar-steps", "3", "--mqar-mixers", "softmax,base_conv",
            "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    report = (tmp_path / "report.md").read_text()
    assert "Leaderboard: quality" in report and "mqar_accuracy_vs_length.png" in report
