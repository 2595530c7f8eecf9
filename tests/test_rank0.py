"""Under ``torchrun`` only rank 0 writes and prints the ``attnzoo eval`` report (every rank trains and scores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnzoo import cli
from attnzoo.train.distributed import is_main_process

ARGV = ["eval", "mqar", "--mixers", "softmax", "--seq-len", "16", "--num-kv-pairs", "2", "--train-examples", "64",
        "--test-examples", "16", "--batch-size", "8", "--d-model", "16", "--steps", "2", "--no-progress"]


def test_is_main_process_reads_torchrun_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


@pytest.mark.parametrize("rank", ["0", "1"])
def test_only_rank_0_writes_and_prints_the_eval_report(rank: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RANK", rank)
    assert cli.main([*ARGV, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    written = (tmp_path / "mqar.json").exists(), (tmp_path / "mqar.md").exists()
    if rank == "0":
        assert written == (True, True) and "wrote" in out and "| softmax |" in out
    else:
        assert written == (False, False) and out == ""
